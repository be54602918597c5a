"""C2SP signed notes and tlog checkpoints: known answers, strict parsing, tamper checks."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from keys import SigningKey, VerifyingKey, key_hash
from node.feeds.note import (
    MAX_SIGNATURES,
    Checkpoint,
    NoteError,
    open_checkpoint,
    open_note,
    open_note_by,
    sign_checkpoint,
    sign_note,
    signer_ids,
)

EM_DASH = "\u2014"
ORIGIN = "example.com/creditnode"
# Deterministic: Ed25519 signatures depend only on the key and the message.
KEY = SigningKey(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
ROOT = hashlib.sha256(b"root").digest()
CHECKPOINT = Checkpoint(ORIGIN, 42, ROOT)
EXPECTED_NOTE = (
    "example.com/creditnode\n"
    "42\n"
    "SBNJTRN+FjG7owHVrKtue7eqdM4RhdRWVl71HXN2d7I=\n"
    "\n"
    "— example.com/creditnode "
    "C/MYXFzwHb+hnjXl2Vp+rebsgdhJyHJ1Xz5q6GmB3Z3Db1M+8eP8Ns5SKfhq5g4QOPwct/TRKK1CO2m1UwHB1Uhl+Ag=\n"
).encode()

# The example key and note from Go's golang.org/x/mod/sumdb/note package documentation.
GO_SKEY_SEED = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"  # 0x01 || Ed25519 seed
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + b"\n"
    + "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXg"
    "KvqfqdngotpRZb6KE6RyyBwJnAM=\n".encode()
)


def sig_line(name: str, blob: bytes) -> bytes:
    return f"{EM_DASH} {name} {base64.b64encode(blob).decode()}\n".encode()


def with_extra_lines(note: bytes, before: list[bytes], after: list[bytes]) -> bytes:
    text, sigs = note.split(b"\n\n")
    return text + b"\n\n" + b"".join(before) + sigs + b"".join(after)


# --- known answers ---------------------------------------------------------------------------


def test_go_note_known_answer() -> None:
    seed = base64.b64decode(GO_SKEY_SEED)
    key = SigningKey("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed[1:]))
    assert key.verifying_key.to_text() == GO_VKEY
    assert sign_note(GO_TEXT, key) == GO_NOTE
    assert open_note(GO_NOTE, VerifyingKey.from_text(GO_VKEY)) == GO_TEXT


def test_checkpoint_body_matches_spec_example() -> None:
    root = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    cp = Checkpoint("example.com/behind-the-sofa", 20852163, root)
    body = b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    assert cp.body() == body
    assert Checkpoint.parse_body(body) == cp


def test_signed_checkpoint_exact_bytes() -> None:
    note = sign_checkpoint(CHECKPOINT, KEY)
    assert note == EXPECTED_NOTE
    lines = note.decode().split("\n")
    assert lines[:3] == [ORIGIN, "42", base64.b64encode(ROOT).decode()]
    assert lines[3] == ""
    assert lines[4].startswith(f"{EM_DASH} {ORIGIN} ")
    assert lines[5:] == [""]  # exactly one signature line, newline-terminated
    blob = base64.b64decode(lines[4].split(" ")[2])
    assert blob[:4] == key_hash(ORIGIN, KEY.verifying_key.raw) == KEY.verifying_key.key_hash
    assert KEY.verifying_key.verify(blob[4:], CHECKPOINT.body())
    assert len(blob) == 4 + 64


def test_body_with_extensions() -> None:
    cp = Checkpoint(ORIGIN, 0, bytes(32), ("ext one", "— ext two"))
    assert cp.body() == (
        f"{ORIGIN}\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\next one\n— ext two\n".encode()
    )
    assert open_checkpoint(sign_checkpoint(cp, KEY), KEY.verifying_key, origin=ORIGIN) == cp


# --- round trips -----------------------------------------------------------------------------

line_text = st.text(alphabet=st.characters(exclude_categories=("Cs", "Cc")), min_size=1)


@given(
    line_text,
    st.integers(min_value=0, max_value=2**63 - 1),
    st.binary(min_size=32, max_size=32),
    st.lists(line_text, max_size=3).map(tuple),
)
def test_checkpoint_round_trip(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    cp = Checkpoint(origin, size, root, extensions)
    assert Checkpoint.parse_body(cp.body()) == cp
    assert open_checkpoint(sign_checkpoint(cp, KEY), KEY.verifying_key, origin=origin) == cp


def test_open_returns_checkpoint() -> None:
    cp = open_checkpoint(EXPECTED_NOTE, KEY.verifying_key, origin=ORIGIN)
    assert cp == CHECKPOINT
    assert (cp.origin, cp.size, cp.root, cp.extensions) == (ORIGIN, 42, ROOT, ())


# --- refusals --------------------------------------------------------------------------------


def test_wrong_key_refused() -> None:
    impostor = SigningKey.generate(ORIGIN)
    with pytest.raises(NoteError, match="not signed by"):
        open_checkpoint(EXPECTED_NOTE, impostor.verifying_key, origin=ORIGIN)
    # Same key material under another name: a different key as far as notes go.
    renamed = VerifyingKey("example.com/other", KEY.verifying_key.public)
    with pytest.raises(NoteError, match="not signed by"):
        open_checkpoint(EXPECTED_NOTE, renamed, origin=ORIGIN)
    with pytest.raises(NoteError, match="not signed by"):
        open_checkpoint(sign_checkpoint(CHECKPOINT, impostor), KEY.verifying_key, origin=ORIGIN)


def test_wrong_origin_refused() -> None:
    other = Checkpoint("example.com/other-log", 42, ROOT)
    note = sign_checkpoint(other, KEY)
    assert open_checkpoint(note, KEY.verifying_key, origin="example.com/other-log") == other
    with pytest.raises(NoteError, match="origin"):
        open_checkpoint(note, KEY.verifying_key, origin=ORIGIN)
    with pytest.raises(NoteError, match="origin"):
        open_checkpoint(EXPECTED_NOTE, KEY.verifying_key, origin=ORIGIN + "/")


def test_unknown_signature_lines_ignored() -> None:
    witness = SigningKey.generate("witness.example/w1")
    body = CHECKPOINT.body()
    ours = KEY.verifying_key.key_hash
    before = [
        sig_line(witness.name, witness.verifying_key.key_hash + witness.sign(body)),
        # Our name with another key ID, and our key ID under another name: unknown keys.
        sig_line(ORIGIN, b"\x00\x00\x00\x00" + bytes(64)),
        sig_line("example.com/other", ours + bytes(64)),
    ]
    after = [sig_line("cosig.example/x", b"\x04" * 80)]
    note = with_extra_lines(EXPECTED_NOTE, before, after)
    assert open_checkpoint(note, KEY.verifying_key, origin=ORIGIN) == CHECKPOINT
    assert open_note(note, witness.verifying_key) == body
    only_unknown = body + b"\n" + b"".join(before + after)
    with pytest.raises(NoteError, match="not signed by"):
        open_checkpoint(only_unknown, KEY.verifying_key, origin=ORIGIN)


def test_bad_signature_from_known_key_rejects_note() -> None:
    forged = sig_line(ORIGIN, KEY.verifying_key.key_hash + bytes(64))
    with pytest.raises(NoteError, match="does not verify"):
        open_checkpoint(
            with_extra_lines(EXPECTED_NOTE, [forged], []), KEY.verifying_key, origin=ORIGIN
        )
    short = sig_line(ORIGIN, KEY.verifying_key.key_hash + bytes(63))
    with pytest.raises(NoteError, match="does not verify"):
        open_checkpoint(
            with_extra_lines(EXPECTED_NOTE, [short], []), KEY.verifying_key, origin=ORIGIN
        )
    # As in Go's note.Open, the first line from a key decides; later duplicates are skipped.
    note = with_extra_lines(EXPECTED_NOTE, [], [forged])
    assert open_checkpoint(note, KEY.verifying_key, origin=ORIGIN) == CHECKPOINT


def test_a_note_signed_by_several_keys_opens_with_any_one_of_a_set() -> None:
    """Key rotation: the origin signs with old and new keys; a verifier accepts the note if
    any key it trusts now signed it, and ignores the lines of keys it no longer trusts."""
    new = SigningKey.generate(ORIGIN)
    stranger = SigningKey.generate(ORIGIN)
    both = sign_checkpoint(CHECKPOINT, [KEY, new])
    assert both.startswith(EXPECTED_NOTE)  # the same bytes signed, one line per key, in order
    assert signer_ids(both) == {
        (ORIGIN, KEY.verifying_key.key_hash),
        (ORIGIN, new.verifying_key.key_hash),
    }
    for keys in ([KEY.verifying_key], [new.verifying_key], [KEY.verifying_key, new.verifying_key]):
        assert open_checkpoint(both, keys, origin=ORIGIN) == CHECKPOINT
    text, verified = open_note_by(both, [new.verifying_key, stranger.verifying_key])
    assert text == CHECKPOINT.body() and verified == (new.verifying_key,)
    # Only the old (retired or revoked) key signed: refused by a verifier trusting the new one.
    with pytest.raises(NoteError, match="not signed by"):
        open_checkpoint(EXPECTED_NOTE, [new.verifying_key], origin=ORIGIN)
    with pytest.raises(NoteError, match="not signed by any of the 2 keys"):
        open_checkpoint(EXPECTED_NOTE, [new.verifying_key, stranger.verifying_key], origin=ORIGIN)
    # A bad line by any trusted key refuses the note, even beside a good one.
    forged = sig_line(ORIGIN, new.verifying_key.key_hash + bytes(64))
    with pytest.raises(NoteError, match="does not verify"):
        open_checkpoint(
            with_extra_lines(EXPECTED_NOTE, [], [forged]),
            [KEY.verifying_key, new.verifying_key],
            origin=ORIGIN,
        )
    with pytest.raises(NoteError, match="no key"):
        open_checkpoint(both, [], origin=ORIGIN)


def test_signature_count_limit() -> None:
    filler = sig_line("witness.example/w", b"\x00" * 68)
    ok = with_extra_lines(EXPECTED_NOTE, [filler] * (MAX_SIGNATURES - 1), [])
    assert open_checkpoint(ok, KEY.verifying_key, origin=ORIGIN) == CHECKPOINT
    too_many = with_extra_lines(EXPECTED_NOTE, [filler] * MAX_SIGNATURES, [])
    with pytest.raises(NoteError, match="more than 100"):
        open_checkpoint(too_many, KEY.verifying_key, origin=ORIGIN)


_SIG = EXPECTED_NOTE.split(b"\n\n")[1]
_BODY = CHECKPOINT.body()
_B64 = _SIG.split(b" ")[2][:-1]
_URLSAFE_ROOT = base64.urlsafe_b64encode(bytes([0xFF] * 32)).decode()


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        (_BODY, "no signature block"),
        (_BODY + b"\n", "end with a newline"),
        (_BODY + b"\n" + _SIG[:-1], "end with a newline"),
        (_BODY + b"\n" + _SIG + b"\n", "end with a newline"),
        (_BODY + b"\n" + _SIG.replace("—".encode(), b"--"), "malformed"),
        (_BODY + b"\n" + _SIG.replace(b" ", b"  ", 1), "malformed"),
        (_BODY + b"\n" + _SIG.replace(b" ", b"\t", 2), "control character"),
        (_BODY + b"\n" + _SIG.replace(ORIGIN.encode(), b"a+b"), "malformed"),
        (_BODY + b"\n" + _SIG.replace(ORIGIN.encode() + b" ", b""), "malformed"),
        (_BODY + b"\n" + _SIG.replace(_B64, b""), "malformed"),
        (_BODY + b"\n" + _SIG.replace(_B64, _B64[:-1]), "base64"),
        (_BODY + b"\n" + _SIG.replace(_B64, _B64[:-2] + b"h="), "canonical"),
        (_BODY + b"\n" + _SIG.replace(_B64, b"AAAA"), "too short"),
        (_BODY + b"\n" + _SIG + b"\xff", "UTF-8"),
        (b"\xff" + EXPECTED_NOTE, "UTF-8"),
        (EXPECTED_NOTE.replace(b"42", b"4\x002"), "control character"),
        (EXPECTED_NOTE.replace(b"\n", b"\r\n"), "control character"),
        # The text ends at the last blank line, so these move signature lines into it.
        (_BODY + b"\n" + _SIG + b"\n" + _SIG, "does not verify"),
        (b"\n\n" + _SIG, "does not verify"),
    ],
)
def test_malformed_notes_refused(note: bytes, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        open_checkpoint(note, KEY.verifying_key, origin=ORIGIN)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "newline"),
        (_BODY[:-1], "newline"),
        (_BODY.replace(b"42", b"042"), "canonical decimal"),
        (_BODY.replace(b"42", b"+42"), "canonical decimal"),
        (_BODY.replace(b"42", b"-42"), "canonical decimal"),
        (_BODY.replace(b"42", b" 42"), "canonical decimal"),
        (_BODY.replace(b"42", b"00"), "canonical decimal"),
        (_BODY.replace(b"42", b"4_2"), "canonical decimal"),
        (_BODY.replace(b"42", "٤٢".encode()), "canonical decimal"),
        (_BODY.replace(b"42", b""), "empty line"),
        (_BODY.replace(b"42", b"9223372036854775808"), "out of range"),
        (_BODY.replace(b"42", b"1" * 30), "canonical decimal"),
        (_BODY.replace(ORIGIN.encode(), b""), "empty line"),
        (_BODY + b"\n", "empty line"),
        (_BODY + b"ext\n\n", "empty line"),
        (_BODY.replace(b"\n", b"\r\n"), "control character"),
        (b"\xc3\x28" + _BODY, "UTF-8"),
        (b"origin\n1\n", "fewer than three lines"),
        (f"{ORIGIN}\n1\n{base64.b64encode(bytes(31)).decode()}\n".encode(), "32 bytes"),
        (f"{ORIGIN}\n1\n{base64.b64encode(bytes(33)).decode()}\n".encode(), "32 bytes"),
        (f"{ORIGIN}\n1\n{base64.b64encode(bytes(32)).decode()[:-1]}\n".encode(), "base64"),
        (f"{ORIGIN}\n1\n{base64.b64encode(bytes(32)).decode()[:-2]}B=\n".encode(), "canonical"),
        (f"{ORIGIN}\n1\n{_URLSAFE_ROOT}\n".encode(), "base64"),
        (f"{ORIGIN}\n1\n {base64.b64encode(bytes(32)).decode()}\n".encode(), "base64"),
    ],
)
def test_strict_body_parsing(body: bytes, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        Checkpoint.parse_body(body)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": ""},
        {"origin": "a\nb"},
        {"origin": "a\x00b"},
        {"size": -1},
        {"size": 2**63},
        {"root": bytes(31)},
        {"extensions": ("",)},
        {"extensions": ("a\nb",)},
    ],
)
def test_invalid_checkpoints_cannot_be_built(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"origin": ORIGIN, "size": 1, "root": ROOT, **kwargs}
    with pytest.raises(ValueError):
        Checkpoint(**fields)  # type: ignore[arg-type]


def test_sign_note_refuses_bad_input() -> None:
    with pytest.raises(NoteError, match="newline"):
        sign_note(b"no newline", KEY)
    with pytest.raises(NoteError, match="control"):
        sign_note(b"a\tb\n", KEY)
    for name in ("", "a b", "a+b"):
        with pytest.raises(NoteError, match="key name"):
            sign_note(b"text\n", SigningKey(name, KEY.private))


# --- tampering -------------------------------------------------------------------------------


def test_every_single_byte_change_is_refused() -> None:
    note = EXPECTED_NOTE
    assert open_checkpoint(note, KEY.verifying_key, origin=ORIGIN) == CHECKPOINT
    accepted: list[tuple[int, int]] = []
    for i in range(len(note)):
        for value in range(256):
            if value == note[i]:
                continue
            tampered = note[:i] + bytes([value]) + note[i + 1 :]
            try:
                open_checkpoint(tampered, KEY.verifying_key, origin=ORIGIN)
            except NoteError:
                continue
            accepted.append((i, value))
    assert accepted == []


def test_every_truncation_and_deletion_is_refused() -> None:
    note = EXPECTED_NOTE
    for i in range(len(note)):
        for tampered in (note[:i], note[:i] + note[i + 1 :], note[:i] + b"x" + note[i:]):
            with pytest.raises(NoteError):
                open_checkpoint(tampered, KEY.verifying_key, origin=ORIGIN)
