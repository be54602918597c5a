"""An audit export bundle, and its offline verification with only the node's peer bundle (the
alliance's copy of its public keys and pinned root v1) (pure, no I/O).

A bundle is one canonical JSON document: the entries of a time range as their exact leaves,
each with its RFC 6962 inclusion proof to one tree size and root, the node's root chain (every
version of its root metadata, so keys can be checked from the pinned v1), and a *statement*:
a C2SP signed checkpoint of the audit log at that size and root, with its signing time and an
extension line ``bundle <sha256>`` over the rest of the document. The statement is signed by
the audit keys the node's root lists as valid at that time (the feed keys if the root lists no
audit key; the peer bundle's feed key before ``keys root-init``).

Every byte counts: the document must be exactly its canonical spelling, the statement's
signature covers the digest of everything else, and each leaf is proved into the signed root.

*Witnessed*: the newest audit checkpoint (at most the bundle's size) for which the node holds
witnesses' cosignatures, as the node signed it, with those cosignature lines, a consistency
proof from its size to the bundle's, and each cosigner's root versions as the node holds them.
The checker verifies the checkpoint like the statement and, for each cosigner whose peer
bundle it is given (pinning the cosigner's root v1), the cosignature under the cosigner's
witness keys valid at its time (:func:`node.witness.trust.cosigner_keys`): a cosignature that
fails fails the bundle; one by a cosigner it was not given is reported as not checked.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from keys import PeerBundle, SigningKey, VerifyingKey
from node.audit.entry import AuditEntry, EntryError, parse_entry
from node.audit.log import ORIGIN_SUFFIX
from node.feeds import merkle, note
from node.keys.roles import AUDIT, FEED, ed25519_public
from node.keys.trusted import RootError, TrustedRoot
from node.witness.cosignature import (
    MAX_COSIGNATURES,
    Cosignature,
    CosignatureError,
    note_body,
    verify_cosignature,
)
from node.witness.trust import Trust, cosigner_keys, pinned_trust

FORMAT: Final = "creditnode-audit-bundle/1"
BUNDLE_EXTENSION: Final = "bundle"
MAX_BUNDLE_BYTES: Final = 512 * 1024 * 1024
_FIELDS: Final = frozenset(
    {"format", "origin", "from_us", "to_us", "size", "root", "entries", "roots", "statement"}
)
WITNESSED: Final = "witnessed"  # absent in bundles made before cosignatures were carried
_WITNESSED_FIELDS: Final = frozenset({"note", "cosignatures", "proof", "cosigner_roots"})
_MAX_COSIGNER_ROOTS: Final = 64  # root versions per cosigner


class BundleError(ValueError):
    """The bundle does not verify; the message says where and why."""


@dataclass(frozen=True)
class Verified:
    """What a bundle proves."""

    origin: str
    size: int
    signed_at: dt.datetime
    entries: tuple[tuple[int, AuditEntry], ...]
    root_version: int | None  # of the node's root the keys were checked in (None: no root)
    role: str  # whose keys signed: audit, or feed
    witnessed_size: int | None = None  # the cosigned checkpoint's size (None: none carried)
    # (cosigner URI, True if its cosignature verified, False if no trust for it was given)
    cosigners: tuple[tuple[str, bool], ...] = ()

    @property
    def cosigned_by(self) -> int:
        """How many cosignatures verified."""
        return sum(1 for _, ok in self.cosigners if ok)


@dataclass(frozen=True)
class Witnessed:
    """What an export carries of witnessing: the cosigned audit checkpoint (the node's signed
    note), the cosignature lines held for it, a consistency proof from its size to the
    bundle's, and each cosigner's root versions held (by cosigner URI)."""

    note: bytes
    cosignatures: Sequence[str]
    proof: Sequence[bytes]
    cosigner_roots: dict[str, Sequence[bytes]]

    def to_json(self) -> dict[str, Any]:
        return {
            "note": self.note.decode("utf-8"),
            "cosignatures": list(self.cosignatures),
            "proof": [_b64(p) for p in self.proof],
            "cosigner_roots": {
                uri: [_b64(r) for r in roots] for uri, roots in sorted(self.cosigner_roots.items())
            },
        }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise BundleError(f"{what} is not base64 text")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise BundleError(f"{what} is not base64") from None
    if _b64(raw) != text:
        raise BundleError(f"{what} is not canonical base64")
    return raw


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def payload_digest(payload: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical document without its statement."""
    return hashlib.sha256(
        _canonical({k: v for k, v in payload.items() if k != "statement"})
    ).hexdigest()


def build_bundle(
    *,
    origin: str,
    start_us: int,
    end_us: int,
    size: int,
    root: bytes,
    entries: Sequence[tuple[int, bytes, Sequence[bytes]]],
    roots: Sequence[bytes],
    keys: Sequence[SigningKey],
    now: dt.datetime,
    witnessed: Witnessed | None = None,
) -> bytes:
    """The bundle's bytes: *entries* are (index, leaf, inclusion proof to *size*)."""
    payload: dict[str, Any] = {
        "format": FORMAT,
        "origin": origin,
        "from_us": start_us,
        "to_us": end_us,
        "size": size,
        "root": _b64(root),
        "entries": [
            {"index": i, "leaf": _b64(leaf), "proof": [_b64(p) for p in proof]}
            for i, leaf, proof in entries
        ],
        "roots": [_b64(r) for r in roots],
        WITNESSED: None if witnessed is None else witnessed.to_json(),
    }
    cp = note.timed_checkpoint(
        origin, size, root, now, extensions=[f"{BUNDLE_EXTENSION} {payload_digest(payload)}"]
    )
    payload["statement"] = note.sign_checkpoint(cp, keys).decode("utf-8")
    return _canonical(payload) + b"\n"


@dataclass(frozen=True)
class NodeTrust:
    """What a checker holds of the node: the root v1 it pins (None: no root) and its feed key
    (both from its peer bundle)."""

    root_v1: bytes | None
    feed_key: VerifyingKey

    @classmethod
    def of(cls, bundle: PeerBundle) -> NodeTrust:
        return cls(bundle.root_v1_bytes, bundle.verifying_key)


def _verifiers(
    trust: PeerBundle | NodeTrust, roots: list[bytes], node_uri: str, at: dt.datetime
) -> tuple[list[VerifyingKey], TrustedRoot | None, str]:
    if isinstance(trust, PeerBundle):
        trust = NodeTrust.of(trust)
    pinned = trust.root_v1
    if pinned is None:
        if roots:
            raise BundleError("the bundle carries a root, but the trusted peer bundle pins none")
        return [trust.feed_key], None, FEED
    if not roots or roots[0] != pinned:
        raise BundleError("the bundle's root v1 is not the one the peer bundle pins")
    try:
        held = TrustedRoot(roots[0])
        if len(roots) > 1:
            held.update_chain(roots[1:], now=at)
    except RootError as exc:
        raise BundleError(f"the bundle's root chain does not verify: {exc}") from None
    role = AUDIT if held.content.online_keys(AUDIT) else FEED
    keys = [VerifyingKey(node_uri, ed25519_public(o.key)) for o in held.content.online_keys(role)]
    if not keys:
        raise BundleError(f"the node's root lists no {role} key")
    return keys, held, role


def verify_bundle(
    data: bytes, trust: PeerBundle, cosigner_bundles: Sequence[PeerBundle] = ()
) -> Verified:
    """Check a bundle offline against the node's peer bundle (and the witnesses' cosignatures
    against *cosigner_bundles*, the cosigners' peer bundles); BundleError on any defect."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError("bundle is too large")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BundleError("not a JSON document") from None
    if not isinstance(obj, dict) or set(obj) - {WITNESSED} != _FIELDS:
        raise BundleError("not an audit bundle (unknown or missing fields)")
    if _canonical(obj) + b"\n" != data:
        raise BundleError("not in canonical form: the bundle was edited")
    if obj["format"] != FORMAT:
        raise BundleError(f"format is not {FORMAT}")
    node_uri = f"creditnode://{trust.federation}/{trust.name}"
    origin = obj["origin"]
    if origin != node_uri + ORIGIN_SUFFIX:
        raise BundleError(f"the bundle is not {trust.name}'s audit log")
    for name in ("from_us", "to_us", "size"):
        if type(obj[name]) is not int or obj[name] < 0:
            raise BundleError(f"{name} is not a whole number")
    size, root = obj["size"], _unb64(obj["root"], "root")
    if not isinstance(obj["roots"], list) or not isinstance(obj["entries"], list):
        raise BundleError("roots and entries are lists")
    roots = [_unb64(r, f"root v{n + 1}") for n, r in enumerate(obj["roots"])]
    statement = obj["statement"]
    if not isinstance(statement, str):
        raise BundleError("statement is not a signed note")
    signed = statement.encode("utf-8")
    try:
        claimed = note.stored_checkpoint(signed)
        at = note.checkpoint_time(claimed)
    except note.NoteError as exc:
        raise BundleError(f"statement is malformed: {exc}") from None
    if at is None:
        raise BundleError("statement has no signing time")
    keys, held, role = _verifiers(trust, roots, node_uri, at)
    try:
        text, by = note.open_note_by(signed, keys)
        cp = note.Checkpoint.parse_body(text)
    except note.NoteError as exc:
        raise BundleError(f"statement signature does not verify: {exc}") from None
    if held is not None and not any(held.key_valid(role, k, at) for k in by):
        raise BundleError(f"no {role} key that signed was valid at {at.isoformat()}")
    if cp.origin != origin or cp.size != size or cp.root != root:
        raise BundleError("statement does not sign this bundle's tree")
    if f"{BUNDLE_EXTENSION} {payload_digest(obj)}" not in cp.extensions:
        raise BundleError("statement does not sign this bundle's contents: it was edited")
    entries: list[tuple[int, AuditEntry]] = []
    last = -1
    for n, item in enumerate(obj["entries"]):
        if not isinstance(item, dict) or set(item) != {"index", "leaf", "proof"}:
            raise BundleError(f"entry {n} is malformed")
        idx = item["index"]
        if type(idx) is not int or not last < idx < size:
            raise BundleError(f"entry {n}: index out of order or beyond the tree")
        last = idx
        leaf = _unb64(item["leaf"], f"leaf {idx}")
        if not isinstance(item["proof"], list):
            raise BundleError(f"entry {n}: proof is not a list")
        proof = [_unb64(p, f"proof of leaf {idx}") for p in item["proof"]]
        try:
            merkle.verify_inclusion(proof, size, root, idx, merkle.leaf_hash(leaf))
        except merkle.ProofError as exc:
            raise BundleError(f"leaf {idx} is not in the signed tree: {exc}") from None
        try:
            entry = parse_entry(leaf)
        except EntryError as exc:
            raise BundleError(f"leaf {idx} is not a valid entry: {exc}") from None
        if not obj["from_us"] <= entry.at_us < obj["to_us"]:
            raise BundleError(f"leaf {idx} is outside the bundle's time range")
        entries.append((idx, entry))
    witnessed_size: int | None = None
    cosigners: tuple[tuple[str, bool], ...] = ()
    if obj.get(WITNESSED) is not None:
        witnessed_size, cosigners = check_witnessed(
            obj[WITNESSED], trust, roots, node_uri, origin, size, root, cosigner_bundles
        )
    return Verified(
        origin=origin,
        size=size,
        signed_at=at,
        entries=tuple(entries),
        root_version=None if held is None else held.version,
        role=role,
        witnessed_size=witnessed_size,
        cosigners=cosigners,
    )


def _cosigner_trust(bundle: PeerBundle, chain: list[bytes]) -> Trust:
    """The cosigner's trust: its pinned root v1 brought forward by the versions the node
    held, or its feed key without a root."""
    try:
        return pinned_trust(bundle.root_v1_bytes, chain, bundle.verifying_key)
    except RootError as exc:
        raise BundleError(f"cosigner {bundle.name}'s root chain does not verify: {exc}") from None


def check_witnessed(
    raw: object,
    trust: PeerBundle | NodeTrust,
    roots: list[bytes],
    node_uri: str,
    origin: str,
    size: int,
    root: bytes,
    cosigner_bundles: Sequence[PeerBundle],
) -> tuple[int, tuple[tuple[str, bool], ...]]:
    """Check a bundle's *witnessed* part (JSON) against the node's peer bundle *trust* and
    root chain *roots*, for a tree of *size* and *root*: the cosigned checkpoint's size and
    each cosigner (True: verified under the bundle given for it; False: none given).
    BundleError on any defect. The exporter runs it too, to carry only what verifies."""
    if not isinstance(raw, dict) or set(raw) != _WITNESSED_FIELDS:
        raise BundleError("witnessed is malformed")
    text, lines, proof_raw, croots = (
        raw["note"], raw["cosignatures"], raw["proof"], raw["cosigner_roots"]
    )  # fmt: skip
    if not isinstance(text, str) or not isinstance(lines, list) or not isinstance(proof_raw, list):
        raise BundleError("witnessed is malformed")
    if not isinstance(croots, dict) or len(lines) > MAX_COSIGNATURES or len(proof_raw) > 64:
        raise BundleError("witnessed is malformed")
    signed = text.encode("utf-8")
    try:
        at = note.checkpoint_time(note.stored_checkpoint(signed))
        body = note_body(signed)
    except note.NoteError as exc:
        raise BundleError(f"the witnessed checkpoint is malformed: {exc}") from None
    if at is None:
        raise BundleError("the witnessed checkpoint has no signing time")
    keys, held, role = _verifiers(trust, roots, node_uri, at)
    try:
        opened, by = note.open_note_by(signed, keys)
        cp = note.Checkpoint.parse_body(opened)
    except note.NoteError as exc:
        raise BundleError(f"the witnessed checkpoint's signature does not verify: {exc}") from None
    if held is not None and not any(held.key_valid(role, k, at) for k in by):
        raise BundleError(f"no {role} key that signed the witnessed checkpoint was valid then")
    if cp.origin != origin or cp.size > size:
        raise BundleError("the witnessed checkpoint is not of this log, or beyond the bundle")
    proof = [_unb64(p, "witnessed proof") for p in proof_raw]
    try:
        merkle.verify_consistency(proof, cp.size, cp.root, size, root)
    except merkle.ProofError as exc:
        raise BundleError(f"the bundle's tree does not extend the witnessed one: {exc}") from None
    given = {b.identity.uri: b for b in cosigner_bundles}
    seen: list[tuple[str, bool]] = []
    for line in lines:
        if not isinstance(line, str):
            raise BundleError("a cosignature is not a line of text")
        try:
            cos = Cosignature.parse(line)
        except CosignatureError as exc:
            raise BundleError(f"a cosignature is malformed: {exc}") from None
        if any(name == cos.name for name, _ in seen):
            raise BundleError(f"two cosignatures by {cos.name}")
        bundle = given.get(cos.name)
        if bundle is None:
            seen.append((cos.name, False))
            continue
        chain_raw = croots.get(cos.name, [])
        if not isinstance(chain_raw, list) or len(chain_raw) > _MAX_COSIGNER_ROOTS:
            raise BundleError(f"the root versions carried for {cos.name} are malformed")
        chain = [_unb64(r, f"a root version of {cos.name}") for r in chain_raw]
        when = dt.datetime.fromtimestamp(min(cos.timestamp, 253402300799), dt.UTC)
        try:
            verify_cosignature(
                cos, body, cosigner_keys(_cosigner_trust(bundle, chain), cos.name, when),
                name=cos.name,
            )  # fmt: skip
        except CosignatureError as exc:
            raise BundleError(f"the witnessed checkpoint's {exc}") from None
        seen.append((cos.name, True))
    return cp.size, tuple(seen)
