"""Keyed pseudonyms for natural persons: how cities match a person without sharing the ID.

A raw resident ID never leaves its city. The ID space is small (about 10^11 live values:
address code x birth date x sequence), so a plain hash is reversed by enumeration; an HMAC
under the alliance key is not, as long as the key stays inside the alliance.

``pseudonym(key, version, idno)`` is HMAC-SHA256(key, the normalised 18-character ID as
ASCII), rendered ``p{version}.`` + the 32-byte MAC in lowercase RFC 4648 base32 without
padding (52 characters). The message is the ID alone, so a partner city implementing this
in another language needs nothing but HMAC-SHA256 and base32; *version* names the key
generation (rotate the key, bump the version) and prefixes the result, so pseudonyms from
different key generations can never be compared by mistake.

Why base32 rather than hex: shorter (52 characters against 64) yet still case-insensitive
and free of ``+``, ``/`` and ``=``, so it survives spreadsheets, URLs, file names and
case-folding databases unchanged; lower case keeps it visibly different from codes, which
are upper case.

The ID is normalised first: full-width digits and a lower-case ``x`` fixed, and a 15-digit
first-generation ID upgraded to its 18-digit form, so both forms give the same pseudonym.

>>> key = bytes(range(32))
>>> p = pseudonym(key, 1, "11010519491231002X")
>>> p.startswith("p1.") and len(p) == 55
True
>>> p == pseudonym(key, 1, "110105491231002") == pseudonym(key, 1, "11010519491231002x")
True
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from node.identity.validate import VALID, check_resident_id

__all__ = ["MIN_KEY_BYTES", "pseudonym"]

# An alliance key shorter than this would itself be guessable; 128 bits is the floor.
MIN_KEY_BYTES = 16


def pseudonym(key: bytes, version: int, idno: str) -> str:
    """The alliance pseudonym of resident ID (or residence permit number) *idno*.

    Raises ValueError for an invalid ID, a short key or a negative version; messages never
    contain the ID.
    """
    if not isinstance(key, bytes | bytearray) or len(key) < MIN_KEY_BYTES:
        raise ValueError(f"alliance key must be at least {MIN_KEY_BYTES} bytes")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError("pseudonym key version must be a non-negative integer")
    checked = check_resident_id(idno)
    if checked.status != VALID:
        # The reason is built from positions and rules only, never the ID.
        raise ValueError(f"cannot pseudonymise an invalid resident ID: {checked.reason}")
    mac = hmac.new(bytes(key), checked.normalised.encode("ascii"), hashlib.sha256).digest()
    return f"p{version}." + base64.b32encode(mac).decode("ascii").rstrip("=").lower()
