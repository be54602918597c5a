"""RFC 9497 OPRF, mode 0x00, ciphersuite ristretto255-SHA512: the core of per-origin pseudonyms.

Each origin city holds its own OPRF key ``skS``. A partner that wants the origin's pseudonym
for one of its own persons X runs :func:`blind` locally and sends only the blinded element;
the origin answers with :func:`blind_evaluate`; the partner's :func:`finalize` yields the
pseudonym of X and nothing else. The origin never sees X, and without ``skS`` nobody can
compute pseudonyms offline, so a partner can no longer enumerate the ID space itself. The
origin computes its own pseudonyms with :func:`evaluate`, the non-interactive form, whose
output equals the protocol's.

Everything follows RFC 9497 exactly (contextString ``"OPRFV1-" || I2OSP(0, 1) ||
"-ristretto255-SHA512"``; HashToGroup, HashToScalar and DeriveKeyPair as in sections 3.2.1
and 4.1), so the outputs match the RFC's Appendix A.1.1 test vectors and any other conforming
implementation. Elements and scalars are 32-byte strings (RFC 9496 encodings; scalars little
endian); an output is 64 bytes (SHA-512). The module is pure: no I/O, no state (though
importing rbcl writes its bundled libsodium to a temporary file, which is unlinked as soon as
it is loaded, so no run leaves one behind).

The group arithmetic is libsodium's, through ``rbcl``. ``expand_message_xmd`` (RFC 9380,
section 5.3.1) is written here with ``hashlib``: it is a dozen lines, and no maintained Python
library offers RFC 9380's expander together with RFC 9497 over libsodium's ristretto255.

Every element received from a peer is checked: a canonical encoding of a ristretto255 point,
and not the identity element. libsodium's ``is_valid_point`` accepts the identity and (in the
1.0.18 that rbcl bundles) encodings with bit 255 set, so both are checked here too. Any
refusal raises :class:`OprfError`.

>>> sk, _pk = derive_key_pair(bytes(32), b"jinan oprf key 1")
>>> r, blinded = blind(b"11010519491231002X")       # the partner, with its own person
>>> evaluated = blind_evaluate(sk, blinded)          # the origin: never sees the input
>>> out = finalize(b"11010519491231002X", r, evaluated)
>>> out == evaluate(sk, b"11010519491231002X")       # the origin's own computation
True
>>> len(out)
64
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from pathlib import Path

import rbcl  # type: ignore[import-untyped]

# rbcl loads its bundled libsodium from a temporary file it never deletes; once the library is
# mapped the file is not needed, and every CLI run would otherwise leave 2.7 MB in /tmp.
with contextlib.suppress(AttributeError, KeyError, OSError):
    Path(sys.modules["rbcl._sodium"].lib_path).unlink()

__all__ = [
    "CONTEXT_STRING",
    "ELEMENT_BYTES",
    "OUTPUT_BYTES",
    "SCALAR_BYTES",
    "OprfError",
    "blind",
    "blind_evaluate",
    "derive_key_pair",
    "evaluate",
    "expand_message_xmd",
    "finalize",
]

MODE_OPRF = 0x00
SUITE = b"ristretto255-SHA512"
CONTEXT_STRING = b"OPRFV1-" + MODE_OPRF.to_bytes(1, "big") + b"-" + SUITE
HASH_TO_GROUP_DST = b"HashToGroup-" + CONTEXT_STRING
HASH_TO_SCALAR_DST = b"HashToScalar-" + CONTEXT_STRING
DERIVE_KEY_PAIR_DST = b"DeriveKeyPair" + CONTEXT_STRING

ELEMENT_BYTES = 32
SCALAR_BYTES = 32
OUTPUT_BYTES = 64  # Nh, SHA-512
MAX_INPUT_BYTES = 0xFFFF  # Finalize encodes len(input) in two bytes

# The order of the ristretto255 group: 2^252 + 27742317777372353535851937790883648493.
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493
IDENTITY = bytes(ELEMENT_BYTES)

# SHA-512 for expand_message_xmd: b_in_bytes 64, s_in_bytes (input block) 128.
_B_IN_BYTES = 64
_S_IN_BYTES = 128


class OprfError(ValueError):
    """An input, key or peer element that the OPRF refuses; the message says which."""


# ---------------------------------------------------------------- RFC 9380 expander


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 section 5.3.1 expand_message_xmd with SHA-512: *length* uniform bytes."""
    ell = -(-length // _B_IN_BYTES)
    if ell > 255 or length > 0xFFFF or length < 1 or len(dst) > 255:
        raise OprfError("expand_message_xmd: length or DST out of range")
    dst_prime = dst + len(dst).to_bytes(1, "big")
    msg_prime = bytes(_S_IN_BYTES) + msg + length.to_bytes(2, "big") + b"\x00" + dst_prime
    b_0 = hashlib.sha512(msg_prime).digest()
    b_i = hashlib.sha512(b_0 + b"\x01" + dst_prime).digest()
    out = [b_i]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b_0, b_i, strict=True))
        b_i = hashlib.sha512(mixed + i.to_bytes(1, "big") + dst_prime).digest()
        out.append(b_i)
    return b"".join(out)[:length]


# ---------------------------------------------------------------- the group (RFC 9497 4.1)


def _hash_to_group(msg: bytes) -> bytes:
    """hash_to_ristretto255: 64 uniform bytes, then RFC 9496's one-way map (from_hash)."""
    uniform = expand_message_xmd(msg, HASH_TO_GROUP_DST, 64)
    element: bytes = rbcl.crypto_core_ristretto255_from_hash(uniform)
    return element


def _hash_to_scalar(msg: bytes, dst: bytes = HASH_TO_SCALAR_DST) -> bytes:
    """64 uniform bytes read little-endian and reduced modulo the group order."""
    uniform = expand_message_xmd(msg, dst, 64)
    scalar: bytes = rbcl.crypto_core_ristretto255_scalar_reduce(uniform)
    return scalar


def _mul(scalar: bytes, element: bytes) -> bytes:
    """scalar * element, for a nonzero canonical scalar and a checked non-identity element."""
    product: bytes = rbcl.crypto_scalarmult_ristretto255(scalar, element)
    return product


def _invert(scalar: bytes) -> bytes:
    inverse: bytes = rbcl.crypto_core_ristretto255_scalar_invert(scalar)
    return inverse


def _check_element(element: bytes, what: str) -> bytes:
    """DeserializeElement: a canonical encoding of a ristretto255 point, not the identity."""
    if not isinstance(element, bytes) or len(element) != ELEMENT_BYTES:
        raise OprfError(f"{what} must be {ELEMENT_BYTES} bytes")
    if element == IDENTITY:
        raise OprfError(f"{what} is the identity element")
    # libsodium 1.0.18 (the one rbcl bundles) ignores bit 255, so it would accept a second,
    # non-canonical encoding of every element; RFC 9496 requires s < p, so refuse it here.
    if element[31] & 0x80 or not rbcl.crypto_core_ristretto255_is_valid_point(element):
        raise OprfError(f"{what} is not a canonical ristretto255 element")
    return element


def _check_scalar(scalar: bytes, what: str) -> bytes:
    """DeserializeScalar: 32 bytes little endian, in [1, order - 1]."""
    if not isinstance(scalar, bytes) or len(scalar) != SCALAR_BYTES:
        raise OprfError(f"{what} must be {SCALAR_BYTES} bytes")
    value = int.from_bytes(scalar, "little")
    if value == 0:
        raise OprfError(f"{what} is zero")
    if value >= GROUP_ORDER:
        raise OprfError(f"{what} is not a canonical scalar (not below the group order)")
    return scalar


def _check_input(data: bytes) -> bytes:
    if not isinstance(data, bytes):
        raise OprfError("OPRF input must be bytes")
    if len(data) > MAX_INPUT_BYTES:
        raise OprfError(f"OPRF input longer than {MAX_INPUT_BYTES} bytes")
    return data


def _input_element(data: bytes) -> bytes:
    element = _hash_to_group(_check_input(data))
    if element == IDENTITY:  # RFC 9497 InvalidInputError; probability negligible
        raise OprfError("OPRF input maps to the identity element")
    return element


# ---------------------------------------------------------------- the protocol (RFC 9497 3)


def derive_key_pair(seed: bytes, info: bytes) -> tuple[bytes, bytes]:
    """DeriveKeyPair (section 3.2.1): (skS, pkS) from a 32-byte secret seed and public info."""
    if not isinstance(seed, bytes) or len(seed) != 32:
        raise OprfError("key seed must be 32 bytes")
    if not isinstance(info, bytes) or len(info) > 0xFFFF:
        raise OprfError("key info must be bytes, at most 65535")
    derive_input = seed + len(info).to_bytes(2, "big") + info
    for counter in range(256):
        sk = _hash_to_scalar(derive_input + counter.to_bytes(1, "big"), DERIVE_KEY_PAIR_DST)
        if sk != bytes(SCALAR_BYTES):
            pk: bytes = rbcl.crypto_scalarmult_ristretto255_base(sk)
            return sk, pk
    raise OprfError("DeriveKeyPair: no nonzero scalar in 256 tries")  # pragma: no cover


def blind(data: bytes, blind_scalar: bytes | None = None) -> tuple[bytes, bytes]:
    """Client: (blind, blindedElement) for *data*. The blind is random unless given (tests)."""
    if blind_scalar is None:
        blind_scalar = rbcl.crypto_core_ristretto255_scalar_random()
    r = _check_scalar(blind_scalar, "blind")
    return r, _mul(r, _input_element(data))


def blind_evaluate(sk: bytes, blinded_element: bytes) -> bytes:
    """Server: evaluatedElement = skS * blindedElement, after checking the peer's element."""
    element = _check_element(blinded_element, "blinded element")
    return _mul(_check_scalar(sk, "server key"), element)


def _finalize_hash(data: bytes, unblinded: bytes) -> bytes:
    hash_input = (
        len(data).to_bytes(2, "big")
        + data
        + len(unblinded).to_bytes(2, "big")
        + unblinded
        + b"Finalize"
    )
    return hashlib.sha512(hash_input).digest()


def finalize(data: bytes, blind_scalar: bytes, evaluated_element: bytes) -> bytes:
    """Client: the 64-byte PRF output for *data*, from the server's evaluated element."""
    element = _check_element(evaluated_element, "evaluated element")
    inverse = _invert(_check_scalar(blind_scalar, "blind"))
    return _finalize_hash(_check_input(data), _mul(inverse, element))


def evaluate(sk: bytes, data: bytes) -> bytes:
    """Server: the same 64-byte output as the protocol, computed locally with skS."""
    key = _check_scalar(sk, "server key")
    return _finalize_hash(data, _mul(key, _input_element(data)))
