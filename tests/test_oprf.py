"""The OPRF core (node/identity/oprf.py): RFC 9497 Appendix A.1.1 test vectors for
OPRF(ristretto255, SHA-512) in OPRF mode, RFC 9380 expand_message_xmd vectors, and properties:
the protocol's output equals the server's local evaluation, keys separate outputs, and every
malformed element from a peer is refused with OprfError."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.identity import oprf
from node.identity.oprf import (
    GROUP_ORDER,
    OprfError,
    blind,
    blind_evaluate,
    derive_key_pair,
    evaluate,
    expand_message_xmd,
    finalize,
)

# ------------------------------------------------------------- RFC 9497 A.1.1, OPRF mode

SEED = bytes.fromhex("a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3")
KEY_INFO = bytes.fromhex("74657374206b6579")  # "test key"
SK_SM = bytes.fromhex("5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e")

VECTORS = [
    pytest.param(
        "00",
        "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706",
        "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
        "7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e",
        "527759c3d9366f277d8c6020418d96bb393ba2afb20ff90df23fb7708264e2f3"
        "ab9135e3bd69955851de4b1f9fe8a0973396719b7912ba9ee8aa7d0b5e24bcf6",
        id="vector-1",
    ),
    pytest.param(
        "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706",
        "da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418",
        "b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25",
        "f4a74c9c592497375e796aa837e907b1a045d34306a749db9f34221f7e750cb4"
        "f2a6413a6bf6fa5e19ba6348eb673934a722a7ede2e7621306d18951e7cf2c73",
        id="vector-2",
    ),
]


def test_context_string() -> None:
    assert oprf.CONTEXT_STRING == b"OPRFV1-\x00-ristretto255-SHA512"
    # The HashToGroup DST as printed in the RFC's vectors.
    assert oprf.HASH_TO_GROUP_DST.hex() == (
        "48617368546f47726f75702d4f50524656312d002d72697374726574746f3235352d534841353132"
    )


def test_derive_key_pair_vector() -> None:
    sk, pk = derive_key_pair(SEED, KEY_INFO)
    assert sk == SK_SM
    assert len(pk) == 32


@pytest.mark.parametrize(("inp", "blind_hex", "blinded", "evaluated", "output"), VECTORS)
def test_rfc9497_vector(
    inp: str, blind_hex: str, blinded: str, evaluated: str, output: str
) -> None:
    data = bytes.fromhex(inp)
    r, blinded_element = blind(data, bytes.fromhex(blind_hex))
    assert r == bytes.fromhex(blind_hex)
    assert blinded_element.hex() == blinded
    evaluated_element = blind_evaluate(SK_SM, blinded_element)
    assert evaluated_element.hex() == evaluated
    assert finalize(data, r, evaluated_element).hex() == output
    assert evaluate(SK_SM, data).hex() == output


# ------------------------------------------------------------- RFC 9380 K.3, SHA-512

XMD_DST = b"QUUX-V01-CS02-with-expander-SHA512-256"


def test_expand_message_xmd_short() -> None:
    assert expand_message_xmd(b"abcdef0123456789", XMD_DST, 0x20).hex() == (
        "087e45a86e2939ee8b91100af1583c4938e0f5fc6c9db4b107b83346bc967f58"
    )


def test_expand_message_xmd_two_blocks() -> None:
    assert expand_message_xmd(b"abc", XMD_DST, 0x80).hex() == (
        "7f1dddd13c08b543f2e2037b14cefb255b44c83cc397c1786d975653e36a6b11"
        "bdd7732d8b38adb4a0edc26a0cef4bb45217135456e58fbca1703cd6032cb134"
        "7ee720b87972d63fbf232587043ed2901bce7f22610c0419751c065922b48843"
        "1851041310ad659e4b23520e1772ab29dcdeb2002222a363f0c2b1c972b3efe1"
    )


def test_expand_message_xmd_limits() -> None:
    with pytest.raises(OprfError):
        expand_message_xmd(b"", b"x" * 256, 64)
    with pytest.raises(OprfError):
        expand_message_xmd(b"", XMD_DST, 255 * 64 + 1)
    with pytest.raises(OprfError):
        expand_message_xmd(b"", XMD_DST, 0)


# ------------------------------------------------------------- properties

inputs = st.binary(max_size=64)
seeds = st.binary(min_size=32, max_size=32)


@settings(max_examples=60, deadline=None)
@given(seed=seeds, data=inputs)
def test_protocol_equals_local_evaluation(seed: bytes, data: bytes) -> None:
    sk, _ = derive_key_pair(seed, b"origin")
    r, blinded = blind(data)
    assert finalize(data, r, blind_evaluate(sk, blinded)) == evaluate(sk, data)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, data=inputs)
def test_blinding_hides_the_input(seed: bytes, data: bytes) -> None:
    """Two blinds of the same input give unrelated blinded elements, the same output."""
    sk, _ = derive_key_pair(seed, b"origin")
    r1, b1 = blind(data)
    r2, b2 = blind(data)
    assert b1 != b2
    assert finalize(data, r1, blind_evaluate(sk, b1)) == finalize(data, r2, blind_evaluate(sk, b2))


@settings(max_examples=40, deadline=None)
@given(a=seeds, b=seeds, data=inputs)
def test_different_keys_different_outputs(a: bytes, b: bytes, data: bytes) -> None:
    sk_a, _ = derive_key_pair(a, b"origin")
    sk_b, _ = derive_key_pair(b, b"origin")
    if sk_a != sk_b:
        assert evaluate(sk_a, data) != evaluate(sk_b, data)


def test_key_info_separates_keys() -> None:
    assert derive_key_pair(SEED, b"jinan")[0] != derive_key_pair(SEED, b"lanzhou")[0]


@settings(max_examples=40, deadline=None)
@given(x=inputs, y=inputs)
def test_different_inputs_different_outputs(x: bytes, y: bytes) -> None:
    if x != y:
        assert evaluate(SK_SM, x) != evaluate(SK_SM, y)


# ------------------------------------------------------------- refusals

_, VALID_ELEMENT = blind(b"x")


def _non_canonical_elements() -> list[tuple[str, bytes]]:
    p = 2**255 - 19
    return [
        ("negative", bytes([VALID_ELEMENT[0] ^ 1]) + VALID_ELEMENT[1:]),  # odd s
        ("all-ff", b"\xff" * 32),
        # s + p for the valid encodings s = 4 and s = 6: the same points, non-canonically.
        ("s4-plus-p", (p + 4).to_bytes(32, "little")),
        ("s6-plus-p", (p + 6).to_bytes(32, "little")),
        ("p", p.to_bytes(32, "little")),  # a non-canonical encoding of the identity
        # Bit 255 set on a valid encoding: libsodium 1.0.18 ignores the bit and accepts it.
        ("bit-255", VALID_ELEMENT[:31] + bytes([VALID_ELEMENT[31] | 0x80])),
    ]


BAD_ELEMENTS = [
    pytest.param(bytes(32), "identity", id="identity"),
    pytest.param(b"", "32 bytes", id="empty"),
    pytest.param(VALID_ELEMENT[:31], "32 bytes", id="short"),
    pytest.param(VALID_ELEMENT + b"\x00", "32 bytes", id="long"),
    *(pytest.param(e, "canonical", id=name) for name, e in _non_canonical_elements()),
]


@pytest.mark.parametrize(("element", "reason"), BAD_ELEMENTS)
def test_blind_evaluate_refuses(element: bytes, reason: str) -> None:
    with pytest.raises(OprfError, match=reason):
        blind_evaluate(SK_SM, element)


@pytest.mark.parametrize(("element", "reason"), BAD_ELEMENTS)
def test_finalize_refuses(element: bytes, reason: str) -> None:
    r, _ = blind(b"x")
    with pytest.raises(OprfError, match=reason):
        finalize(b"x", r, element)


def test_element_must_be_bytes() -> None:
    with pytest.raises(OprfError):
        blind_evaluate(SK_SM, bytearray(VALID_ELEMENT))  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(element=st.binary(min_size=32, max_size=32))
def test_arbitrary_bytes_are_evaluated_or_refused(element: bytes) -> None:
    """A peer's 32 bytes either decode to a valid element or raise OprfError, nothing else."""
    try:
        out = blind_evaluate(SK_SM, element)
    except OprfError:
        return
    assert len(out) == 32
    assert out != bytes(32)


@pytest.mark.parametrize(
    "scalar",
    [
        pytest.param(bytes(32), id="zero"),
        pytest.param(GROUP_ORDER.to_bytes(32, "little"), id="order"),
        pytest.param(b"\xff" * 32, id="too-large"),
        pytest.param(b"\x01" * 31, id="short"),
    ],
)
def test_bad_scalars_refused(scalar: bytes) -> None:
    with pytest.raises(OprfError):
        blind(b"x", scalar)
    with pytest.raises(OprfError):
        blind_evaluate(scalar, VALID_ELEMENT)
    with pytest.raises(OprfError):
        evaluate(scalar, b"x")
    with pytest.raises(OprfError):
        finalize(b"x", scalar, VALID_ELEMENT)


def test_bad_inputs_refused() -> None:
    with pytest.raises(OprfError, match="65535"):
        blind(b"\x00" * 0x10000)
    with pytest.raises(OprfError, match="65535"):
        evaluate(SK_SM, b"\x00" * 0x10000)
    with pytest.raises(OprfError, match="bytes"):
        evaluate(SK_SM, "00")  # type: ignore[arg-type]
    assert len(evaluate(SK_SM, b"\x00" * 0xFFFF)) == 64


def test_bad_seeds_refused() -> None:
    with pytest.raises(OprfError):
        derive_key_pair(b"\xa3" * 31, KEY_INFO)
    with pytest.raises(OprfError):
        derive_key_pair(SEED, b"\x00" * 0x10000)


def test_oprf_error_is_a_value_error() -> None:
    assert issubclass(OprfError, ValueError)


# ------------------------------------------------------------- text form, doctests


def test_doctests() -> None:
    assert doctest.testmod(oprf, verbose=False).failed == 0
