"""C2SP signed notes (https://c2sp.org/signed-note) carrying tlog checkpoints
(https://c2sp.org/tlog-checkpoint), signed with the node's Ed25519 key.

Example::

    from keys import SigningKey
    from node.feeds.note import Checkpoint, open_checkpoint, sign_checkpoint

    key = SigningKey.generate("example.com/log")
    note = sign_checkpoint(Checkpoint("example.com/log", 0, bytes(32)), key)
    cp = open_checkpoint(note, key.verifying_key, origin="example.com/log")
    assert cp.size == 0

A checkpoint this node signs carries its signing time as an extension line, ``time <unix
seconds>`` (:func:`timed_checkpoint`, read back by :func:`checkpoint_time`), so a verifier can
judge whether the signing key was valid *when it signed*.

Notes are always verified from the exact bytes received, never from a re-serialisation.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from keys import SigningKey, VerifyingKey, key_hash

__all__ = [
    "MAX_SIGNATURES",
    "MAX_TREE_SIZE",
    "TIME_EXTENSION",
    "Checkpoint",
    "NoteError",
    "Verifiers",
    "checkpoint_time",
    "open_checkpoint",
    "open_checkpoint_by",
    "open_note",
    "open_note_by",
    "sign_checkpoint",
    "sign_note",
    "signer_ids",
    "stored_checkpoint",
    "timed_checkpoint",
]

MAX_SIGNATURES = 100  # same cap as Go's note.Open; the spec requires accepting >= 16
MAX_TREE_SIZE = 2**63 - 1  # sizes are stored as signed 64-bit integers
# How far ahead of a verifier's clock a checkpoint's signed time may be (the origin's clock
# may run a little fast); beyond it the time is a lie or a broken clock, and refused.
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)

_SIG_PREFIX = "\u2014 "  # EM DASH, space
_ED25519_SIG_SIZE = 64
_KEY_HASH_SIZE = 4
_ROOT_SIZE = 32
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # ASCII controls other than newline
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")  # [0-9], not \d: only ASCII digits

TIME_EXTENSION = "time"
"""The keyword of the extension line carrying a checkpoint's signing time: ``time <unix
seconds>``, one line, canonical decimal (no sign, no leading zero)."""
_TIME_PREFIX = TIME_EXTENSION + " "
# The last second a datetime can hold (9999-12-31T23:59:59Z): a larger value cannot be a time.
_MAX_UNIX = 253402300799


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


def sign_note(text: bytes, key: SigningKey | Sequence[SigningKey]) -> bytes:
    """Sign ``text`` (UTF-8, ending in a newline) and return the signed note bytes: one
    signature line per key, in the order given."""
    keys = (key,) if isinstance(key, SigningKey) else tuple(key)
    if not keys:
        raise NoteError("no key to sign the note with")
    if not text.endswith(b"\n"):
        raise NoteError("note text must end with a newline")
    _decode_text(text, "note text")
    lines = []
    for k in keys:
        if not _valid_key_name(k.name):
            raise NoteError(f"key name {k.name!r} must be non-empty without spaces or '+'")
        verifying = k.verifying_key
        blob = key_hash(verifying.name, verifying.raw) + k.sign(text)
        lines.append(f"{_SIG_PREFIX}{k.name} {base64.b64encode(blob).decode('ascii')}\n")
    return text + b"\n" + "".join(lines).encode("utf-8")


def _split(note: bytes) -> tuple[bytes, bytes]:
    split = note.rfind(b"\n\n")
    if split < 0:
        raise NoteError("note has no signature block")
    return note[: split + 1], note[split + 2 :]


def stored_checkpoint(note: bytes) -> Checkpoint:
    """The checkpoint in a note this node verified when it arrived and kept (not re-verified)."""
    return Checkpoint.parse_body(_split(note)[0])


Verifiers = VerifyingKey | Iterable[VerifyingKey]
"""One verifying key, or a set of them of which any one signature suffices."""


def _key_set(keys: Verifiers) -> tuple[VerifyingKey, ...]:
    found = (keys,) if isinstance(keys, VerifyingKey) else tuple(keys)
    if not found:
        raise NoteError("no key to verify the note with")
    return found


def _describe(keys: Sequence[VerifyingKey]) -> str:
    if len(keys) == 1:
        return keys[0].name
    names = sorted({k.name for k in keys})
    hashes = ", ".join(sorted(k.key_hash.hex() for k in keys))
    return f"any of the {len(keys)} keys of {', '.join(names)} ({hashes})"


def open_note_by(note: bytes, keys: Verifiers) -> tuple[bytes, tuple[VerifyingKey, ...]]:
    """Verify ``note`` against *keys* and return its text (the exact signed bytes) and the
    keys whose signatures verified. The note is accepted if at least one of *keys* signed it.

    As in Go's ``note.Open``: lines by keys not in *keys* are ignored (witness cosignatures,
    a retired or revoked key's); for each of *keys* the first line by it decides and later
    ones are skipped; a line by one of *keys* that does not verify refuses the whole note.
    """
    wanted = _key_set(keys)
    by_id: dict[tuple[str, bytes], list[VerifyingKey]] = {}
    for k in wanted:
        group = by_id.setdefault((k.name, k.key_hash), [])
        if all(other.raw != k.raw for other in group):
            group.append(k)
    _decode_text(note, "note")
    text, sig_block = _split(note)
    if not sig_block.endswith(b"\n"):
        raise NoteError("note does not end with a newline")
    lines = sig_block[:-1].decode("utf-8").split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has more than {MAX_SIGNATURES} signatures")
    decided: set[tuple[str, bytes]] = set()
    verified: list[VerifyingKey] = []
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise NoteError("malformed signature line")
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not _valid_key_name(name) or not b64:
            raise NoteError("malformed signature line")
        blob = _b64decode_canonical(b64, "signature")
        if len(blob) <= _KEY_HASH_SIZE:
            raise NoteError("signature is too short")
        ident = (name, blob[:_KEY_HASH_SIZE])
        if ident in decided or ident not in by_id:
            continue
        decided.add(ident)
        signature = blob[_KEY_HASH_SIZE:]
        signer = (
            next((k for k in by_id[ident] if k.verify(signature, text)), None)
            if len(signature) == _ED25519_SIG_SIZE
            else None
        )
        if signer is None:
            raise NoteError(f"signature by {name} (key {ident[1].hex()}) does not verify")
        verified.append(signer)
    if not verified:
        raise NoteError(f"note is not signed by {_describe(wanted)}")
    return text, tuple(verified)


def signer_ids(note: bytes) -> frozenset[tuple[str, bytes]]:
    """The (key name, key hash) of each signature line of *note*, unverified (empty if the
    note is malformed): which keys a note claims to be signed by."""
    try:
        _, sig_block = _split(note)
        lines = sig_block.decode("utf-8").splitlines()
    except (NoteError, UnicodeDecodeError):
        return frozenset()
    found = set()
    for line in lines:
        name, _, b64 = line.removeprefix(_SIG_PREFIX).partition(" ")
        try:
            blob = _b64decode_canonical(b64, "signature")
        except NoteError:
            continue
        found.add((name, blob[:_KEY_HASH_SIZE]))
    return frozenset(found)


def open_note(note: bytes, key: Verifiers) -> bytes:
    """Verify ``note`` against ``key`` (or any one of a set of keys) and return its text
    (the exact signed bytes)."""
    return open_note_by(note, key)[0]


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


def sign_checkpoint(cp: Checkpoint, key: SigningKey | Sequence[SigningKey]) -> bytes:
    """The signed note for ``cp``: body, blank line, one signature line by ``key`` (or one
    line by each of several keys, in order: old and new during a key rotation)."""
    return sign_note(cp.body(), key)


def open_checkpoint_by(
    note: bytes, key: Verifiers, *, origin: str
) -> tuple[Checkpoint, tuple[VerifyingKey, ...]]:
    """Verify a signed checkpoint from ``origin`` by ``key`` (or by at least one of a set of
    keys) and parse it; also return the keys whose signatures verified, so the caller can
    judge whether any of them was valid at the checkpoint's signing time."""
    text, signers = open_note_by(note, key)
    cp = Checkpoint.parse_body(text)
    if cp.origin != origin:
        raise NoteError(f"checkpoint is for origin {cp.origin!r}, expected {origin!r}")
    return cp, signers


def open_checkpoint(note: bytes, key: Verifiers, *, origin: str) -> Checkpoint:
    """Verify a signed checkpoint from ``origin`` by ``key`` (or by at least one of a set of
    keys, e.g. the feed keys valid now in the origin's root) and parse it."""
    return open_checkpoint_by(note, key, origin=origin)[0]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _unix_seconds(at: dt.datetime) -> int:
    if at.tzinfo is None or at.utcoffset() is None:
        raise NoteError("a checkpoint's signing time must carry a time zone")
    # Whole seconds, rounded down: a signed time never claims a moment after signing. In
    # integers: a float timestamp rounds 0.999997 s up to the next second in late years.
    seconds = (at - _EPOCH) // dt.timedelta(seconds=1)
    if not 0 <= seconds <= _MAX_UNIX:
        raise NoteError(f"signing time {at.isoformat()} is out of range")
    return seconds


def timed_checkpoint(
    origin: str, size: int, root: bytes, at: dt.datetime, *, extensions: Sequence[str] = ()
) -> Checkpoint:
    """A checkpoint whose first extension line is ``time <unix seconds>``: the moment it is
    signed (whole seconds, UTC), so a verifier can judge the signing key's validity then.

    *extensions* are further lines after it; none may be another time line.
    """
    cp = Checkpoint(origin, size, root, (f"{_TIME_PREFIX}{_unix_seconds(at)}", *extensions))
    checkpoint_time(cp)  # refuses a second time line among *extensions*
    return cp


def _is_time_line(line: str) -> bool:
    return line == TIME_EXTENSION or line.startswith(_TIME_PREFIX)


def checkpoint_time(cp: Checkpoint) -> dt.datetime | None:
    """The signing time in *cp* (UTC), or None for a checkpoint without a time line (signed
    before signing times existed). More than one time line, or a value that is not a canonical
    decimal number of seconds, is a :class:`NoteError`."""
    lines = [ext for ext in cp.extensions if _is_time_line(ext)]
    if not lines:
        return None
    if len(lines) > 1:
        raise NoteError("checkpoint has more than one time line")
    value = lines[0][len(_TIME_PREFIX) :]
    if not _SIZE.fullmatch(value) or int(value) > _MAX_UNIX:
        raise NoteError("checkpoint time is not a canonical decimal number of seconds")
    return dt.datetime.fromtimestamp(int(value), dt.UTC)


def signing_time(now: dt.datetime, newest: Iterable[bytes]) -> dt.datetime:
    """The time a checkpoint signed at *now* states: *now* in whole seconds, but not earlier
    than the signed time of the *newest* checkpoints (the stored one, the one served):
    subscribers refuse a time earlier than one they verified, so a clock stepped back a little
    must not stall them. A time further ahead than subscribers accept was a broken clock that
    no subscriber took: it is not carried on."""
    now = now.astimezone(dt.UTC).replace(microsecond=0)
    at = now
    for signed in newest:
        if not signed:
            continue
        try:
            before = checkpoint_time(stored_checkpoint(signed))
        except NoteError:
            continue
        if before is not None and at < before <= now + MAX_CLOCK_SKEW:
            at = before
    return at
