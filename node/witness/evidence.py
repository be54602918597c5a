"""Fork evidence a third party can check offline (pure): one JSON document holding, for one
origin, the signed checkpoints (with any cosignature lines) and proofs of each fork this node
recorded, and the origin's trust as this node held it (its root versions, or its enrolled
feed key).

The checker needs only the origin's root v1 (its peer bundle) or, for an origin without a
root, its feed key; without either it uses the embedded ones and says so. Each record passes
when both notes verify under the origin's keys (valid at their signed times) and the notes
and proof on their own prove the fork (:func:`proven_fork`): one size with two roots; a
proof leading to the larger root from a different root at the smaller size; or a smaller
tree signed at a later time. A record whose notes do not verify fails the whole document.

Cosignatures on the notes are checked when the checker can: under the cosigner's peer bundle
given to it (its root v1, brought forward by the cosigner's root versions the exporter held,
carried in ``cosigners``), else under the trust embedded for that cosigner (and said so), else
listed unchecked. A cosignature that does not verify fails the document.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from keys import PeerBundle, VerifyingKey
from node.feeds.note import Checkpoint, NoteError
from node.keys.roles import FEED
from node.keys.trusted import RootError, TrustedRoot
from node.witness.cosignature import (
    Cosignature,
    CosignatureError,
    note_body,
    proven_fork,
    verify_cosignature,
)
from node.witness.trust import Trust, cosigner_keys, open_origin_checkpoint, pinned_trust

FORMAT = "creditnode-fork-evidence/v1"
MAX_RECORDS = 1000
MAX_BUNDLE_BYTES = 16 * 1024 * 1024
_HASH = 32
# Root versions in a bundle are judged by their signatures only: a fork signed in the past
# stays proven after the root that listed its key expired.
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class EvidenceError(ValueError):
    """The evidence document is malformed (not a verification verdict)."""


@dataclass(frozen=True)
class Record:
    """One recorded fork: two signed notes (cosignature lines included) and a proof."""

    kind: str
    detail: str
    recorded_at: dt.datetime
    earlier_note: bytes
    later_note: bytes
    proof: bytes  # concatenated 32-byte hashes

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "detail": self.detail,
            "recorded_at": self.recorded_at.astimezone(dt.UTC).isoformat(),
            "earlier_note": self.earlier_note.decode("utf-8"),
            "later_note": self.later_note.decode("utf-8"),
            "proof": [
                base64.b64encode(self.proof[i : i + _HASH]).decode()
                for i in range(0, len(self.proof), _HASH)
            ],
        }


def build(
    *,
    origin: str,
    peer: str,
    roots: Sequence[bytes],
    feed_key: str,
    records: Sequence[Record],
    exported_at: dt.datetime,
    cosigners: Mapping[str, tuple[Sequence[bytes], str]] | None = None,
) -> dict[str, Any]:
    """The evidence document (JSON-ready). *cosigners*: for each cosigner URI named on the
    notes, its root versions and feed key as the exporter held them."""
    return {
        "cosigners": {
            uri: {"roots": [base64.b64encode(r).decode() for r in rs], "feed_key": key}
            for uri, (rs, key) in sorted((cosigners or {}).items())
        },
        "format": FORMAT,
        "origin": origin,
        "peer": peer,
        "exported_at": exported_at.astimezone(dt.UTC).isoformat(),
        "trust": {
            "roots": [base64.b64encode(r).decode() for r in roots],
            "feed_key": feed_key,
        },
        "evidence": [r.to_json() for r in records],
    }


@dataclass
class RecordVerdict:
    index: int
    kind: str
    proven: str | None  # the fork kind the record proves on its own, or None
    problem: str = ""  # why it proves nothing, or why it does not verify
    verified: bool = True  # both notes verify under the origin's keys
    sizes: tuple[int, int] = (0, 0)
    cosigners: list[str] = field(default_factory=list)  # names on cosignature lines
    # (cosigner, "verified" | "verified (embedded trust)" | "unchecked") per cosignature
    cosignatures: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kind": self.kind,
            "verified": self.verified,
            "proven": self.proven,
            "problem": self.problem,
            "sizes": list(self.sizes),
            "cosigners": self.cosigners,
            "cosignatures": [{"cosigner": c, "status": st} for c, st in self.cosignatures],
        }


@dataclass
class Verdict:
    origin: str
    trust: str  # what the signatures were judged by
    records: list[RecordVerdict]

    @property
    def ok(self) -> bool:
        """Every record verifies and at least one proves a fork."""
        return all(r.verified for r in self.records) and any(r.proven for r in self.records)

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "trust": self.trust,
            "ok": self.ok,
            "records": [r.to_json() for r in self.records],
        }


def _text(doc: dict[str, Any], key: str, limit: int = 1000) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or len(value) > limit:
        raise EvidenceError(f"{key!r} is missing or not a string of at most {limit} characters")
    return value


def _b64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise EvidenceError(f"{what} is not a string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise EvidenceError(f"{what} is not base64") from None


def parse(data: bytes) -> dict[str, Any]:
    """The document in *data*, with its shape checked."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise EvidenceError(f"evidence file larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvidenceError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise EvidenceError(f"not a {FORMAT} document")
    trust, records = doc.get("trust"), doc.get("evidence")
    if not isinstance(trust, dict) or not isinstance(records, list):
        raise EvidenceError("'trust' must be an object and 'evidence' a list")
    if not 0 < len(records) <= MAX_RECORDS:
        raise EvidenceError(f"'evidence' must hold 1 to {MAX_RECORDS} records")
    _text(doc, "origin", 200)
    return doc


def embedded_trust(doc: dict[str, Any]) -> tuple[bytes | None, VerifyingKey | None]:
    """The root v1 and feed key the exporter held (to use when the checker has neither)."""
    trust = doc["trust"]
    roots = trust.get("roots") or []
    if not isinstance(roots, list):
        raise EvidenceError("'trust.roots' must be a list")
    v1 = _b64(roots[0], "trust.roots[0]") if roots else None
    key_text = trust.get("feed_key")
    try:
        key = VerifyingKey.from_text(key_text) if isinstance(key_text, str) and key_text else None
    except ValueError as exc:
        raise EvidenceError(f"trust.feed_key: {exc}") from None
    return v1, key


def _trust(
    doc: dict[str, Any], root_v1: bytes | None, key: VerifyingKey | None
) -> tuple[Trust, str]:
    """The origin's trust: root v1 (given), brought forward by the document's later root
    versions (each must be signed by its predecessor's threshold), or the feed key."""
    if root_v1 is not None:
        try:
            root = TrustedRoot(root_v1)
        except RootError as exc:
            raise EvidenceError(f"root v1: {exc}") from None
        if root.version != 1:
            raise EvidenceError(f"the root given is version {root.version}, not 1")
        chain = [_b64(r, "trust.roots[]") for r in doc["trust"].get("roots", [])[1:]]
        if chain:
            try:
                root.update_chain(chain, now=_EPOCH)
            except RootError as exc:
                raise EvidenceError(f"root versions in the document: {exc}") from None
        digest = hashlib.sha256(root_v1).hexdigest()
        return root, f"root v1 sha256 {digest} brought to v{root.version}"
    if key is not None:
        return key, f"feed key {key.to_text()}"
    raise EvidenceError("no root v1 nor feed key to judge the origin's signatures by")


def _cosigners(note: bytes) -> list[str]:
    names = []
    for line in note.decode("utf-8", "replace").split("\n\n", 1)[-1].splitlines():
        try:
            names.append(Cosignature.parse(line).name)
        except CosignatureError:
            continue
    return names


def _cosigner_trusts(
    doc: dict[str, Any], bundles: Sequence[PeerBundle]
) -> dict[str, tuple[Trust, str]]:
    """Each cosigner's trust (and how it is known): from its bundle given, else embedded."""
    carried = doc.get("cosigners", {})
    if not isinstance(carried, dict):
        raise EvidenceError("'cosigners' must be an object")
    chains: dict[str, tuple[list[bytes], VerifyingKey | None]] = {}
    for uri, raw in carried.items():
        if not isinstance(raw, dict) or not isinstance(raw.get("roots", []), list):
            raise EvidenceError(f"cosigners[{uri!r}] is malformed")
        chain = [_b64(r, f"cosigners[{uri!r}].roots[]") for r in raw.get("roots", [])[:64]]
        key_text = raw.get("feed_key")
        try:
            key = (
                VerifyingKey.from_text(key_text) if isinstance(key_text, str) and key_text else None
            )
        except ValueError as exc:
            raise EvidenceError(f"cosigners[{uri!r}].feed_key: {exc}") from None
        chains[str(uri)] = (chain, key)
    out: dict[str, tuple[Trust, str]] = {}
    try:
        for uri, (chain, key) in chains.items():
            if key is not None:
                out[uri] = (pinned_trust(chain[0] if chain else None, chain, key), EMBEDDED)
        for b in bundles:
            uri = b.identity.uri
            out[uri] = (pinned_trust(b.root_v1_bytes, chains.get(uri, ([], None))[0],
                                     b.verifying_key), VERIFIED)  # fmt: skip
    except RootError as exc:
        raise EvidenceError(f"a cosigner's root versions: {exc}") from None
    return out


VERIFIED, EMBEDDED, UNCHECKED = "verified", "verified (embedded trust)", "unchecked"


def _check_cosignatures(
    note: bytes, trusts: dict[str, tuple[Trust, str]], verdict: RecordVerdict
) -> None:
    """Check the cosignature lines of *note* it can; a bad one marks *verdict* failed."""
    body = note_body(note)
    for line in note.decode("utf-8", "replace").split("\n\n", 1)[-1].splitlines():
        try:
            cos = Cosignature.parse(line)
        except CosignatureError:
            continue  # the origin's own signature line, or another signer's
        known = trusts.get(cos.name)
        if known is None:
            verdict.cosignatures.append((cos.name, UNCHECKED))
            continue
        trust, how = known
        when = dt.datetime.fromtimestamp(min(cos.timestamp, 253402300799), dt.UTC)
        try:
            verify_cosignature(cos, body, cosigner_keys(trust, cos.name, when), name=cos.name)
        except CosignatureError as exc:
            verdict.verified = False
            verdict.problem = f"a cosignature does not verify: {exc}"
            verdict.cosignatures.append((cos.name, "INVALID"))
            continue
        verdict.cosignatures.append((cos.name, how))


def check(
    doc: dict[str, Any],
    *,
    root_v1: bytes | None = None,
    feed_key: VerifyingKey | None = None,
    cosigner_bundles: Sequence[PeerBundle] = (),
) -> Verdict:
    """Judge every record of *doc* under the origin's trust, and the cosignatures on its
    notes under the cosigners' (see the module docstring)."""
    origin = _text(doc, "origin", 200)
    trust, described = _trust(doc, root_v1, feed_key)
    cosigner_trusts = _cosigner_trusts(doc, cosigner_bundles)
    verdicts = []
    for i, raw in enumerate(doc["evidence"]):
        if not isinstance(raw, dict):
            raise EvidenceError(f"evidence[{i}] is not an object")
        kind = _text(raw, "kind", 40)
        verdict = RecordVerdict(i, kind, None)
        verdicts.append(verdict)
        try:
            recorded = dt.datetime.fromisoformat(_text(raw, "recorded_at", 40))
            if recorded.tzinfo is None:
                raise ValueError("no time zone")
        except ValueError as exc:
            raise EvidenceError(f"evidence[{i}].recorded_at: {exc}") from None
        proof_list = raw.get("proof")
        if not isinstance(proof_list, list) or len(proof_list) > 64:
            raise EvidenceError(f"evidence[{i}].proof must be a list of at most 64 hashes")
        proof = [_b64(h, f"evidence[{i}].proof[]") for h in proof_list]
        notes = [_text(raw, k, 64 * 1024).encode("utf-8") for k in ("earlier_note", "later_note")]
        try:
            cps: list[Checkpoint] = [
                open_origin_checkpoint(
                    n, trust, origin=origin, key_name=origin, role=FEED, now=recorded
                )
                for n in notes
            ]
        except NoteError as exc:
            verdict.verified = False
            verdict.problem = f"a note does not verify as {origin}'s: {exc}"
            continue
        verdict.sizes = (cps[0].size, cps[1].size)
        verdict.cosigners = sorted({c for n in notes for c in _cosigners(n)})
        for n in notes:
            _check_cosignatures(n, cosigner_trusts, verdict)
        if not verdict.verified:
            continue
        if any(len(h) != _HASH for h in proof):
            verdict.problem = "the proof holds a hash that is not 32 bytes"
            continue
        verdict.proven = proven_fork(cps[0], cps[1], proof)
        if verdict.proven is None:
            verdict.problem = (
                "both notes are the origin's, but they and the proof do not prove a fork on "
                "their own (a proof from a power-of-two size carries no old root; a rollback "
                "needs signed times)"
            )
    return Verdict(origin, described, verdicts)
