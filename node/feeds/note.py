"""C2SP signed notes (https://c2sp.org/signed-note) carrying tlog checkpoints
(https://c2sp.org/tlog-checkpoint), signed with the node's Ed25519 key.

Example::

    from keys import SigningKey
    from node.feeds.note import Checkpoint, open_checkpoint, sign_checkpoint

    key = SigningKey.generate("example.com/log")
    note = sign_checkpoint(Checkpoint("example.com/log", 0, bytes(32)), key)
    cp = open_checkpoint(note, key.verifying_key, origin="example.com/log")
    assert cp.size == 0

Notes are always verified from the exact bytes received, never from a re-serialisation.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from keys import SigningKey, VerifyingKey, key_hash

__all__ = [
    "MAX_SIGNATURES",
    "MAX_TREE_SIZE",
    "Checkpoint",
    "NoteError",
    "open_checkpoint",
    "open_note",
    "sign_checkpoint",
    "sign_note",
    "stored_checkpoint",
]

MAX_SIGNATURES = 100  # same cap as Go's note.Open; the spec requires accepting >= 16
MAX_TREE_SIZE = 2**63 - 1  # sizes are stored as signed 64-bit integers

_SIG_PREFIX = "\u2014 "  # EM DASH, space
_ED25519_SIG_SIZE = 64
_KEY_HASH_SIZE = 4
_ROOT_SIZE = 32
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # ASCII controls other than newline
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")  # [0-9], not \d: only ASCII digits


class NoteError(ValueError):
    """A signed note or checkpoint is malformed or does not verify."""


def _decode_text(data: bytes, what: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError(f"{what} is not valid UTF-8") from None
    if _CONTROL.search(text):
        raise NoteError(f"{what} contains a control character other than newline")
    return text


def _b64decode_canonical(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise NoteError(f"{what} is not valid base64") from None
    # Non-zero padding bits decode to the same bytes; require the one canonical spelling
    # so that no two encodings of a note or checkpoint are both accepted.
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def _valid_key_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def sign_note(text: bytes, key: SigningKey) -> bytes:
    """Sign ``text`` (UTF-8, ending in a newline) and return the signed note bytes."""
    if not text.endswith(b"\n"):
        raise NoteError("note text must end with a newline")
    _decode_text(text, "note text")
    if not _valid_key_name(key.name):
        raise NoteError(f"key name {key.name!r} must be non-empty without spaces or '+'")
    verifying = key.verifying_key
    blob = key_hash(verifying.name, verifying.raw) + key.sign(text)
    line = f"{_SIG_PREFIX}{key.name} {base64.b64encode(blob).decode('ascii')}\n"
    return text + b"\n" + line.encode("utf-8")


def _split(note: bytes) -> tuple[bytes, bytes]:
    split = note.rfind(b"\n\n")
    if split < 0:
        raise NoteError("note has no signature block")
    return note[: split + 1], note[split + 2 :]


def stored_checkpoint(note: bytes) -> Checkpoint:
    """The checkpoint in a note this node verified when it arrived and kept (not re-verified)."""
    return Checkpoint.parse_body(_split(note)[0])


def open_note(note: bytes, key: VerifyingKey) -> bytes:
    """Verify ``note`` against ``key`` and return its text (the exact signed bytes)."""
    _decode_text(note, "note")
    text, sig_block = _split(note)
    if not sig_block.endswith(b"\n"):
        raise NoteError("note does not end with a newline")
    lines = sig_block[:-1].decode("utf-8").split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has more than {MAX_SIGNATURES} signatures")
    want_hash = key.key_hash
    verified = False
    decided = False
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise NoteError("malformed signature line")
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not _valid_key_name(name) or not b64:
            raise NoteError("malformed signature line")
        blob = _b64decode_canonical(b64, "signature")
        if len(blob) <= _KEY_HASH_SIZE:
            raise NoteError("signature is too short")
        # Lines from other keys are ignored (witness cosignatures, rotated keys), and as in
        # Go's note.Open the first line from our key decides: later duplicates are skipped.
        if decided or name != key.name or blob[:_KEY_HASH_SIZE] != want_hash:
            continue
        decided = True
        signature = blob[_KEY_HASH_SIZE:]
        if len(signature) != _ED25519_SIG_SIZE or not key.verify(signature, text):
            raise NoteError(f"signature by {key.name} does not verify")
        verified = True
    if not verified:
        raise NoteError(f"note is not signed by {key.name}")
    return text


def _check_line(value: str, what: str) -> None:
    if not value:
        raise NoteError(f"checkpoint {what} is empty")
    if "\n" in value or _CONTROL.search(value):
        raise NoteError(f"checkpoint {what} contains a newline or control character")


@dataclass(frozen=True)
class Checkpoint:
    """A tlog checkpoint: the signed head of an origin's Merkle log."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(f"checkpoint size {self.size} is out of range")
        if not isinstance(self.root, bytes) or len(self.root) != _ROOT_SIZE:
            raise NoteError(f"checkpoint root must be {_ROOT_SIZE} bytes")
        for ext in self.extensions:
            _check_line(ext, "extension line")

    def body(self) -> bytes:
        """The note text: origin, size, base64 root and extension lines, each ending in \\n."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        lines.extend(self.extensions)
        return "".join(line + "\n" for line in lines).encode("utf-8")

    @classmethod
    def parse_body(cls, body: bytes) -> Checkpoint:
        """Strictly parse a checkpoint note text."""
        text = _decode_text(body, "checkpoint")
        if not text.endswith("\n"):
            raise NoteError("checkpoint does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("checkpoint has fewer than three lines")
        if any(not line for line in lines):
            raise NoteError("checkpoint contains an empty line")
        origin, size_text, root_text, *extensions = lines
        if not _SIZE.fullmatch(size_text):
            raise NoteError("checkpoint size is not a canonical decimal number")
        root = _b64decode_canonical(root_text, "checkpoint root")
        return cls(origin=origin, size=int(size_text), root=root, extensions=tuple(extensions))


def sign_checkpoint(cp: Checkpoint, key: SigningKey) -> bytes:
    """The signed note for ``cp``: body, blank line, one signature line by ``key``."""
    return sign_note(cp.body(), key)


def open_checkpoint(note: bytes, key: VerifyingKey, *, origin: str) -> Checkpoint:
    """Verify a signed checkpoint from ``origin`` by ``key`` and parse it."""
    cp = Checkpoint.parse_body(open_note(note, key))
    if cp.origin != origin:
        raise NoteError(f"checkpoint is for origin {cp.origin!r}, expected {origin!r}")
    return cp
