"""Per-origin oblivious pseudonyms for natural persons (pure): how cities match a person
without sharing the ID, and without any shared secret.

Each origin city holds its own RFC 9497 OPRF key (:mod:`node.identity.oprf`,
ristretto255-SHA512). A person's pseudonym in that origin's feed is the origin's PRF output
over the normalised 18-character ID, and means nothing anywhere else. The origin computes its
own pseudonyms locally (:func:`own_pseudonym`). A partner that wants to know whether its own
person is on the origin's lists blinds the ID (:func:`blind_id`), sends only the blinded
element, and finalizes the origin's answer (:func:`finalize_id`): it learns that one
pseudonym, the origin never sees the ID, and nobody without the origin's key can test guesses
offline. Each evaluation is decided, rate limited and recorded at the origin's border.

Text form: ``o{version}.`` + the first 32 bytes of the 64-byte PRF output in lowercase RFC 4648
base32 without padding (55 characters in all). 256 bits keep pseudonyms collision free and
the index small; *version* names the origin's key generation, so pseudonyms of different
generations can never be compared by mistake. The ID is normalised first (full-width digits, a
lower-case ``x``, a 15-digit first-generation ID upgraded), so every form gives one pseudonym.

>>> key = PseudonymKey.derive(bytes(32), version=1)
>>> p = own_pseudonym(key, "11010519491231002X")
>>> p.startswith("o1.") and len(p) == 55
True
>>> blind, blinded = blind_id("110105491231002")          # the partner, with its own person
>>> evaluated = evaluate_blinded(key, blinded)           # the origin, never seeing the ID
>>> finalize_id("11010519491231002x", blind, evaluated, key.version) == p
True
"""

from __future__ import annotations

import base64
import re

from node.identity import oprf
from node.identity.pseudonym_key import PseudonymKey
from node.identity.validate import VALID, check_resident_id

__all__ = [
    "PSEUDONYM_SHAPE",
    "PseudonymKey",
    "blind_id",
    "evaluate_blinded",
    "finalize_id",
    "id_input",
    "own_pseudonym",
]

PSEUDONYM_BYTES = 32
PSEUDONYM_SHAPE = re.compile(r"o[0-9]{1,9}\.[a-z2-7]{52}")


def id_input(idno: str) -> bytes:
    """The PRF input for a resident ID: its normalised 18 characters as ASCII.

    Raises ValueError for an invalid ID; the message never contains the ID.
    """
    checked = check_resident_id(idno)
    if checked.status != VALID:
        # The reason is built from positions and rules only, never the ID.
        raise ValueError(f"cannot pseudonymise an invalid resident ID: {checked.reason}")
    return checked.normalised.encode("ascii")


def _text(version: int, output: bytes) -> str:
    b32 = base64.b32encode(output[:PSEUDONYM_BYTES]).decode("ascii").rstrip("=").lower()
    return f"o{version}.{b32}"


def own_pseudonym(key: PseudonymKey, idno: str) -> str:
    """The origin's pseudonym of *idno*, computed with its own key."""
    return _text(key.version, oprf.evaluate(key.secret, id_input(idno)))


def blind_id(idno: str) -> tuple[bytes, bytes]:
    """Partner: (blind, blinded element) for *idno*; only the blinded element is sent."""
    return oprf.blind(id_input(idno))


def evaluate_blinded(key: PseudonymKey, blinded_element: bytes) -> bytes:
    """Origin: its answer to one blinded element (OprfError if the element is malformed)."""
    return oprf.blind_evaluate(key.secret, blinded_element)


def finalize_id(idno: str, blind: bytes, evaluated_element: bytes, version: int) -> str:
    """Partner: the origin's pseudonym of *idno* from the origin's answer."""
    return _text(version, oprf.finalize(id_input(idno), blind, evaluated_element))
