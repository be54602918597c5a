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

FORMAT: Final = "creditnode-audit-bundle/1"
BUNDLE_EXTENSION: Final = "bundle"
MAX_BUNDLE_BYTES: Final = 512 * 1024 * 1024
_FIELDS: Final = frozenset(
    {"format", "origin", "from_us", "to_us", "size", "root", "entries", "roots", "statement"}
)


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
    }
    cp = note.timed_checkpoint(
        origin, size, root, now, extensions=[f"{BUNDLE_EXTENSION} {payload_digest(payload)}"]
    )
    payload["statement"] = note.sign_checkpoint(cp, keys).decode("utf-8")
    return _canonical(payload) + b"\n"


def _verifiers(
    trust: PeerBundle, roots: list[bytes], node_uri: str, at: dt.datetime
) -> tuple[list[VerifyingKey], TrustedRoot | None, str]:
    pinned = trust.root_v1_bytes
    if pinned is None:
        if roots:
            raise BundleError("the bundle carries a root, but the trusted peer bundle pins none")
        return [trust.verifying_key], None, FEED
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


def verify_bundle(data: bytes, trust: PeerBundle) -> Verified:
    """Check a bundle offline against the node's peer bundle; BundleError on any defect."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError("bundle is too large")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BundleError("not a JSON document") from None
    if not isinstance(obj, dict) or set(obj) != _FIELDS:
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
    return Verified(
        origin=origin,
        size=size,
        signed_at=at,
        entries=tuple(entries),
        root_version=None if held is None else held.version,
        role=role,
    )
