"""C2SP tlog-cosignature (``cosignature/v1``, Ed25519) lines and the tlog-witness
add-checkpoint decision (pure: no I/O).

A cosignature is a signed-note signature line by the cosigner::

    — <cosigner name> base64(key id (4) || timestamp (8, big-endian) || Ed25519 signature (64))

The key id is ``SHA-256(name || "\\n" || 0x04 || public key)[:4]`` and the signed message is
``"cosignature/v1\\ntime <timestamp>\\n"`` followed by the checkpoint's note body. A
cosignature states that, as of its time, this is the largest consistent tree the cosigner has
seen for the origin.

Example::

    line = cosign(body, witness_key, timestamp=1700000000).line()
    verify_cosignature(Cosignature.parse(line), body, [witness_key.verifying_key])
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from keys import SigningKey, VerifyingKey
from node.feeds import merkle
from node.feeds.note import Checkpoint, NoteError, checkpoint_time

__all__ = [
    "BAD_PROOF",
    "CONFLICT",
    "HEADER",
    "MAX_COSIGNATURES",
    "MAX_PROOF_HASHES",
    "OLD_TOO_LARGE",
    "Cosignature",
    "CosignatureError",
    "Held",
    "Refusal",
    "attach",
    "cosign",
    "cosigner_key_id",
    "decide",
    "note_body",
    "proven_fork",
    "signed_message",
    "verify_cosignature",
]

HEADER = b"cosignature/v1\n"
_ALG_COSIGNATURE_V1 = b"\x04"
_SIG_PREFIX = "\u2014 "  # EM DASH, space (as every note signature line)
_KEY_ID_SIZE = 4
_ED25519_SIG_SIZE = 64
_BLOB_SIZE = _KEY_ID_SIZE + 8 + _ED25519_SIG_SIZE
MAX_TIMESTAMP = 2**63 - 1
MAX_COSIGNATURES = 32  # per checkpoint served or gossiped: more is noise, not evidence
MAX_PROOF_HASHES = 63  # as tlog-witness: a client sends at most 63 proof lines
MAX_NAME = 200

# Why add-checkpoint refuses (tlog-witness: 400, 409, 422).
OLD_TOO_LARGE = "old size exceeds the checkpoint size"
CONFLICT = "old size does not match the checkpoint held"
BAD_PROOF = "consistency proof does not verify"


class CosignatureError(ValueError):
    """A cosignature line is malformed or does not verify."""


def cosigner_key_id(name: str, public_raw: bytes) -> bytes:
    """The 4-byte key id of an Ed25519 cosigner key (signature type 0x04)."""
    return hashlib.sha256(name.encode() + b"\n" + _ALG_COSIGNATURE_V1 + public_raw).digest()[:4]


def signed_message(body: bytes, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: header, time line, then the checkpoint body."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise CosignatureError("cosignature timestamp out of range")
    return HEADER + f"time {timestamp}\n".encode() + body


def _valid_name(name: str) -> bool:
    return (
        0 < len(name) <= MAX_NAME
        and name.isprintable()
        and "+" not in name
        and not any(c.isspace() for c in name)
    )


@dataclass(frozen=True)
class Cosignature:
    """One parsed cosignature line."""

    name: str
    key_id: bytes
    timestamp: int
    signature: bytes

    def line(self) -> str:
        """The signature line, without its newline."""
        blob = self.key_id + struct.pack(">Q", self.timestamp) + self.signature
        return f"{_SIG_PREFIX}{self.name} {base64.b64encode(blob).decode('ascii')}"

    @classmethod
    def parse(cls, line: str) -> Cosignature:
        """Strictly parse one line (a trailing newline is allowed)."""
        text = line[:-1] if line.endswith("\n") else line
        if not text.startswith(_SIG_PREFIX):
            raise CosignatureError("cosignature line does not start with '\u2014 '")
        name, sep, b64 = text[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not _valid_name(name):
            raise CosignatureError("cosignature line has no valid key name")
        try:
            blob = base64.b64decode(b64.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error):
            raise CosignatureError("cosignature is not valid base64") from None
        if base64.b64encode(blob).decode("ascii") != b64:
            raise CosignatureError("cosignature is not canonical base64")
        if len(blob) != _BLOB_SIZE:
            raise CosignatureError(f"cosignature is {len(blob)} bytes, not {_BLOB_SIZE}")
        (timestamp,) = struct.unpack(">Q", blob[4:12])
        if timestamp > MAX_TIMESTAMP:
            raise CosignatureError("cosignature timestamp exceeds 2^63 - 1")
        return cls(name, blob[:4], timestamp, blob[12:])


def cosign(body: bytes, key: SigningKey, *, timestamp: int, name: str | None = None) -> Cosignature:
    """Cosign checkpoint *body* with *key* at *timestamp* (POSIX seconds), under *name* (the
    cosigner's name; the key's own name by default)."""
    cosigner = key.name if name is None else name
    if not _valid_name(cosigner):
        raise CosignatureError(f"cosigner name {cosigner!r} is not a valid key name")
    Checkpoint.parse_body(body)  # a cosigner signs checkpoints, nothing else
    key_id = cosigner_key_id(cosigner, key.verifying_key.raw)
    return Cosignature(cosigner, key_id, timestamp, key.sign(signed_message(body, timestamp)))


def verify_cosignature(
    cos: Cosignature, body: bytes, keys: Iterable[VerifyingKey], *, name: str | None = None
) -> VerifyingKey:
    """The key among *keys* (tried under *name*, or each key's own name) whose cosignature
    *cos* is of *body*. Raises CosignatureError if none matches or the signature is bad."""
    message = signed_message(body, cos.timestamp)
    matched = False
    for key in keys:
        cosigner = key.name if name is None else name
        if cos.name != cosigner or cos.key_id != cosigner_key_id(cosigner, key.raw):
            continue
        matched = True
        if key.verify(cos.signature, message):
            return key
    if matched:
        raise CosignatureError(f"cosignature by {cos.name} (key {cos.key_id.hex()}) is invalid")
    raise CosignatureError(f"cosignature by {cos.name} (key {cos.key_id.hex()}) is by no known key")


def note_body(note: bytes) -> bytes:
    """The checkpoint body of a signed note (the text before the blank line), parsed strictly."""
    split = note.rfind(b"\n\n")
    if split < 0:
        raise NoteError("note has no signature block")
    body = note[: split + 1]
    Checkpoint.parse_body(body)
    return body


def attach(note: bytes, lines: Sequence[str]) -> bytes:
    """*note* with cosignature *lines* added as further signature lines (a note verifier that
    does not know the cosigners ignores them, as signed-note requires)."""
    if not note.endswith(b"\n"):
        raise NoteError("note does not end with a newline")
    return note + b"".join(line.encode("utf-8") + b"\n" for line in lines)


# -- the add-checkpoint decision --------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """The checkpoint a witness holds for an origin: the newest it cosigned."""

    size: int
    root: bytes
    note: bytes


@dataclass(frozen=True)
class Refusal:
    """Why add-checkpoint refuses; *fork* names a proven fork ("equivocation",
    "inconsistent") when the request itself proves the origin signed two histories."""

    reason: str
    detail: str
    held_size: int
    fork: str | None = None


def _prefix_roots(proof: Sequence[bytes], t1: int, t2: int) -> tuple[bytes, bytes] | None:
    """The (old root, new root) an RFC 6962 consistency proof from *t1* to *t2* commits to,
    when *t1* is not a power of two (then the proof carries the old tree's nodes itself);
    None when the proof is malformed or *t1* is a power of two."""
    if not 0 < t1 < t2 or t1 & (t1 - 1) == 0 or not proof:
        return None
    if any(len(h) != merkle.HASH_SIZE for h in proof):
        return None
    fn, sn = t1 - 1, t2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            fr = merkle.node_hash(c, fr)
            sr = merkle.node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = merkle.node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return fr, sr


def proven_fork(
    earlier: Checkpoint, later: Checkpoint, proof: Sequence[bytes], *, times: bool = True
) -> str | None:
    """The kind of fork two checkpoints of one origin prove on their own (with *proof*, a
    consistency proof from the smaller size to the larger), or None if they prove none:

    - "equivocation": one size, two roots;
    - "inconsistent": the proof leads to the larger checkpoint's root, but from a tree of the
      smaller size whose root is not the smaller checkpoint's (only possible when the smaller
      size is not a power of two: otherwise the proof does not carry the old root);
    - "rollback": (with *times*) the smaller tree was signed at a later time than the larger.
    """
    if earlier.origin != later.origin:
        return None
    small, large = (earlier, later) if earlier.size <= later.size else (later, earlier)
    if small.size == large.size:
        return "equivocation" if small.root != large.root else None
    roots = _prefix_roots(proof, small.size, large.size)
    if roots is not None and roots[1] == large.root and roots[0] != small.root:
        return "inconsistent"
    if times:
        try:
            t_small, t_large = checkpoint_time(small), checkpoint_time(large)
        except NoteError:
            return None
        if t_small is not None and t_large is not None and t_small > t_large:
            return "rollback"
    return None


def decide(
    held: Held | None, old_size: int, proof: Sequence[bytes], cp: Checkpoint
) -> Refusal | None:
    """tlog-witness add-checkpoint for a checkpoint whose signature already verified: None to
    cosign (the caller then persists *cp* as held, atomically with this check), or why not."""
    held_size = held.size if held is not None else 0
    if old_size > cp.size:
        return Refusal(OLD_TOO_LARGE, f"old size {old_size} > checkpoint size {cp.size}", held_size)
    if old_size != held_size:
        return Refusal(CONFLICT, f"this witness holds size {held_size}, not {old_size}", held_size)
    if len(proof) > MAX_PROOF_HASHES:
        return Refusal(BAD_PROOF, f"more than {MAX_PROOF_HASHES} proof hashes", held_size)
    if held is None:
        if proof:
            return Refusal(BAD_PROOF, "the proof from size 0 must be empty", held_size)
        return None
    if held.size == cp.size:
        if proof:
            return Refusal(BAD_PROOF, "the proof between equal sizes must be empty", held_size)
        if held.root != cp.root:
            return Refusal(
                CONFLICT, f"two roots signed for size {cp.size}", held_size, fork="equivocation"
            )
        return None
    try:
        merkle.verify_consistency(proof, held.size, held.root, cp.size, cp.root)
    except merkle.ProofError as exc:
        old = Checkpoint(cp.origin, held.size, held.root)
        return Refusal(
            BAD_PROOF, str(exc), held_size, fork=proven_fork(old, cp, proof, times=False)
        )
    return None
