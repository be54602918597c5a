"""Signing a report as a DSSE envelope, the report file, and its offline verification with
only the alliance's peer bundles (pure, no I/O).

A **report file** is one canonical JSON document: ``{"format", "envelope", "roots"}``. The
envelope is securesystemslib's DSSE (payload type :data:`~node.reports.payload.PAYLOAD_TYPE`)
over the payload's canonical JSON, signed by every report key the issuer's root lists valid at
the payload's ``issued_at``. ``roots`` holds, for the issuer and each origin the report cites,
its root metadata from v1 on, so that a verifier holding only the pinned v1 of each (the peer
bundles) follows the chain to the keys valid at signing time, after any later rotation.

:func:`verify_report` checks, and fails on any byte changed: the file is canonical, the DSSE
signature is by a report key of the issuer valid at ``issued_at``, every cited checkpoint is
signed by its origin's feed key valid at its time, every item's leaf is in its checkpoint's
tree, the item's public values are the ones the leaf commits to, and it sits in its section.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, Key

from keys import PeerBundle, SigningKey, VerifyingKey
from node.api import feeds
from node.feeds import merkle, note
from node.feeds.leaf import LeafError, open_leaf
from node.feeds.note import MAX_CLOCK_SKEW
from node.keys.roles import FEED, REPORT, ed25519_public, tuf_key
from node.keys.trusted import RootError, TrustedRoot
from node.reports.payload import (
    FORMAT,
    PAYLOAD_TYPE,
    SECTION_NAMES,
    ReportError,
    b64,
    canonical,
    public_view,
    section_of,
    unb64,
)
from node.witness.cosignature import (
    Cosignature,
    CosignatureError,
    note_body,
    verify_cosignature,
)
from node.witness.trust import cosigner_keys, open_origin_checkpoint

FILE_FORMAT: Final = "creditnode-report-file/1"
MAX_FILE_BYTES: Final = 64 * 1024 * 1024
_FILE_FIELDS: Final = frozenset({"format", "envelope", "roots"})


def sign_payload(payload_bytes: bytes, keys: Sequence[tuple[SigningKey, str]]) -> bytes:
    """The DSSE envelope (JSON) over *payload_bytes*, one signature per (key, key id)."""
    if not keys:
        raise ReportError("no report key valid now that this node holds: report not signed")
    env = Envelope(payload=payload_bytes, payload_type=PAYLOAD_TYPE, signatures={})
    for key, keyid in keys:
        public = tuf_key(key.verifying_key)
        public.keyid = keyid
        env.sign(CryptoSigner(key.private, public))
    return canonical(env.to_dict())


def report_file(envelope: bytes, roots: Mapping[str, Sequence[bytes]]) -> bytes:
    """The self-contained file a report is saved as."""
    doc = {
        "format": FILE_FORMAT,
        "envelope": json.loads(envelope),
        "roots": {origin: [b64(r) for r in chain] for origin, chain in sorted(roots.items())},
    }
    return canonical(doc) + b"\n"


def digest(data: bytes) -> str:
    """SHA-256 (hex) of a report file: what the QR code and the README quote."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class VerifiedReport:
    """What a verified report proves."""

    payload: dict[str, Any]
    issuer: str
    issued_at: dt.datetime
    signed_by: tuple[str, ...]  # key ids
    root_version: int | None
    items: int
    cosignatures: int  # verified against a cosigner's bundle
    unchecked_cosignatures: int  # by cosigners no given bundle names


def _uri(bundle: PeerBundle) -> str:
    return f"creditnode://{bundle.federation}/{bundle.name}"


def _trust(
    bundles: Mapping[str, PeerBundle], roots: Mapping[str, list[bytes]], origin: str,
    at: dt.datetime,
) -> TrustedRoot | VerifyingKey:  # fmt: skip
    bundle = bundles.get(origin)
    if bundle is None:
        raise ReportError(f"no trusted bundle for {origin}: give its peer bundle with --trust")
    pinned = bundle.root_v1_bytes
    chain = roots.get(origin, [])
    if pinned is None:
        if chain:
            raise ReportError(f"the report carries a root for {origin}; its bundle pins none")
        return bundle.verifying_key
    if not chain or chain[0] != pinned:
        raise ReportError(f"the report's root v1 of {origin} is not the one its bundle pins")
    try:
        held = TrustedRoot(chain[0])
        if len(chain) > 1:
            held.update_chain(chain[1:], now=at)
    except RootError as exc:
        raise ReportError(f"the root chain of {origin} does not verify: {exc}") from None
    return held


def report_keys(trust: TrustedRoot | VerifyingKey) -> tuple[list[Key], str]:
    """The keys *trust* signs reports (and statistics) with, and their role: its report keys,
    its feed keys for a root without report keys, the key itself for a bare feed key."""
    if isinstance(trust, VerifyingKey):
        return [tuf_key(trust.public)], FEED
    role = REPORT if trust.content.online_keys(REPORT) else FEED
    out: list[Key] = []
    for o in trust.content.online_keys(role):
        k = tuf_key(ed25519_public(o.key))
        k.keyid = o.keyid
        out.append(k)
    return out, role


def _parse_time(text: object) -> dt.datetime:
    if not isinstance(text, str):
        raise ReportError("issued_at is not a time")
    try:
        at = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise ReportError("issued_at is not a UTC time") from None
    return at


def open_signed_file(
    data: bytes, *, what: str, file_format: str, payload_type: str, payload_format: str,
    max_bytes: int,
) -> tuple[Envelope, dict[str, Any], object]:  # fmt: skip
    """Parse a signed file strictly: a canonical ``{"format", "envelope", "roots"}`` document
    holding a canonical DSSE envelope of a canonical JSON payload. (envelope, payload, the
    document's ``roots`` as found). Raises ReportError naming *what* the file should be."""
    if len(data) > max_bytes:
        raise ReportError(f"{what} file is too large")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ReportError("not a JSON document") from None
    if not isinstance(doc, dict) or set(doc) != _FILE_FIELDS or doc["format"] != file_format:
        raise ReportError(f"not a {what} file (unknown or missing fields)")
    if canonical(doc) + b"\n" != data:
        raise ReportError(f"not in canonical form: the {what} file was edited")
    raw = doc["envelope"]
    if (
        not isinstance(raw, dict)
        or set(raw) != {"payload", "payloadType", "signatures"}
        or not isinstance(raw["signatures"], list)
        or not all(isinstance(x, dict) and set(x) == {"keyid", "sig"} for x in raw["signatures"])
    ):
        raise ReportError("the envelope is not a DSSE envelope (unknown or missing fields)")
    try:
        env = Envelope.from_dict(copy.deepcopy(raw))  # from_dict rewrites what it is given
    except Exception:
        raise ReportError("the envelope is not a DSSE envelope") from None
    if canonical(env.to_dict()) != canonical(raw) or len(env.signatures) != len(raw["signatures"]):
        raise ReportError("the envelope is not in canonical form")
    if env.payload_type != payload_type:
        raise ReportError(f"payload type is not {payload_type}")
    try:
        payload = json.loads(env.payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ReportError("the payload is not JSON") from None
    if not isinstance(payload, dict) or canonical(payload) != env.payload:
        raise ReportError("the payload is not in canonical form")
    if payload.get("format") != payload_format:
        raise ReportError(f"payload format is not {payload_format}")
    return env, payload, doc["roots"]


def load_file(data: bytes) -> tuple[Envelope, dict[str, Any], dict[str, list[bytes]]]:
    """Parse a report file strictly: (envelope, payload, roots). Raises ReportError."""
    env, payload, roots_doc = open_signed_file(
        data, what="report", file_format=FILE_FORMAT, payload_type=PAYLOAD_TYPE,
        payload_format=FORMAT, max_bytes=MAX_FILE_BYTES,
    )  # fmt: skip
    if not isinstance(roots_doc, dict):
        raise ReportError("roots is not a map")
    roots: dict[str, list[bytes]] = {}
    cited = {payload.get("issuer"), *(payload.get("checkpoints") or {})}
    for origin, chain in roots_doc.items():
        if origin not in cited:
            raise ReportError(f"the file carries a root chain of {origin}, which it does not cite")
        if not isinstance(chain, list):
            raise ReportError(f"root chain of {origin} is not a list")
        roots[str(origin)] = [unb64(r, f"root v{n + 1} of {origin}") for n, r in enumerate(chain)]
    return env, payload, roots


def verify_report(
    data: bytes, bundles: Sequence[PeerBundle], *, now: dt.datetime | None = None
) -> VerifiedReport:
    """Check a report file offline against the alliance's peer bundles (see the module
    docstring). Raises ReportError on any defect."""
    now = now or dt.datetime.now(dt.UTC)
    env, payload, roots = load_file(data)
    by_uri = {_uri(b): b for b in bundles}
    issuer = payload.get("issuer")
    if not isinstance(issuer, str):
        raise ReportError("the report names no issuer")
    at = _parse_time(payload.get("issued_at"))
    if at > now + MAX_CLOCK_SKEW:
        raise ReportError("the report is dated in the future")
    trust = _trust(by_uri, roots, issuer, at)
    keys, role = report_keys(trust)
    if not keys:
        raise ReportError(f"the issuer's root lists no {role} key")
    try:
        env.verify(keys, 1)
        # Every signature must verify (securesystemslib stops at the threshold): a signature
        # line added or altered is an edit too.
        accepted = {
            s.keyid: k for s in env.signatures.values() for k in keys
            if k.keyid == s.keyid and env.verify([k], 1)
        }  # fmt: skip
    except (VerificationError, ValueError):
        raise ReportError(
            "the report's signature does not verify: it was edited or forged"
        ) from None
    if len(accepted) != len(env.signatures):
        raise ReportError("a signature on the report is by no key of the issuer")
    held = trust if isinstance(trust, TrustedRoot) else None
    if held is not None and not any(held.key_valid(role, k, at) for k in accepted):
        raise ReportError(f"no {role} key that signed was valid at {at.isoformat()}")
    checkpoints, cosigned, unchecked = _checkpoints(payload, by_uri, roots, at)
    items = _items(payload, checkpoints)
    return VerifiedReport(
        payload=payload, issuer=issuer, issued_at=at, signed_by=tuple(sorted(accepted)),
        root_version=None if held is None else held.version, items=items,
        cosignatures=cosigned, unchecked_cosignatures=unchecked,
    )  # fmt: skip


def _checkpoints(
    payload: Mapping[str, Any], bundles: Mapping[str, PeerBundle],
    roots: Mapping[str, list[bytes]], at: dt.datetime,
) -> tuple[dict[str, note.Checkpoint], int, int]:  # fmt: skip
    cited = payload.get("checkpoints")
    if not isinstance(cited, dict):
        raise ReportError("the report cites no checkpoints")
    out: dict[str, note.Checkpoint] = {}
    cosigned = unchecked = 0
    for origin, held in cited.items():
        if not isinstance(held, dict) or set(held) != {"note", "cosignatures"}:
            raise ReportError(f"checkpoint of {origin} is malformed")
        signed = str(held["note"]).encode("utf-8")
        claimed = _claimed_time(signed, origin)
        trust = _trust(bundles, roots, origin, claimed or at)
        try:
            cp = open_origin_checkpoint(
                signed, trust, origin=origin, key_name=origin, role=FEED, now=at + MAX_CLOCK_SKEW
            )
        except note.NoteError as exc:
            raise ReportError(f"checkpoint of {origin} does not verify: {exc}") from None
        out[origin] = cp
        lines = held["cosignatures"]
        if not isinstance(lines, list):
            raise ReportError(f"cosignatures of {origin} are not a list")
        body = note_body(signed)
        for line in lines:
            try:
                cos = Cosignature.parse(str(line))
            except CosignatureError as exc:
                raise ReportError(f"a cosignature of {origin} is malformed: {exc}") from None
            if _cosigned(cos, body, bundles, roots):
                cosigned += 1
            else:
                unchecked += 1
    return out, cosigned, unchecked


def _cosigned(
    cos: Cosignature, body: bytes, bundles: Mapping[str, PeerBundle],
    roots: Mapping[str, list[bytes]],
) -> bool:  # fmt: skip
    """True if *cos* verifies under its witness's keys as the given bundle (and the chain the
    file carries, if any) has them. Cosignatures are supporting evidence inside the signed
    payload: one by an unknown witness, or by a witness key its pinned root does not list
    (rotated since), is counted as unchecked, not a failure."""
    witness = bundles.get(cos.name)
    if witness is None:
        return False
    when = dt.datetime.fromtimestamp(min(cos.timestamp, 2**40), dt.UTC)
    try:
        if cos.name in roots or witness.root_v1_bytes is None:
            trust = _trust(bundles, roots, cos.name, when)
        else:
            trust = TrustedRoot(witness.root_v1_bytes)
        verify_cosignature(cos, body, cosigner_keys(trust, cos.name, when))
    except (ReportError, RootError, CosignatureError, ValueError):
        return False
    return True


def _claimed_time(signed: bytes, origin: str) -> dt.datetime | None:
    try:
        return note.checkpoint_time(note.stored_checkpoint(signed))
    except note.NoteError as exc:
        raise ReportError(f"checkpoint of {origin} is malformed: {exc}") from None


def _items(payload: Mapping[str, Any], checkpoints: Mapping[str, note.Checkpoint]) -> int:
    sections = payload.get("sections")
    if not isinstance(sections, dict) or set(sections) != set(SECTION_NAMES):
        raise ReportError("the report's sections are not the report structure's")
    count = 0
    for name, items in sections.items():
        if not isinstance(items, list):
            raise ReportError(f"section {name} is not a list")
        for n, item in enumerate(items):
            _item(name, n, item, checkpoints)
            count += 1
    return count


def _item(section: str, n: int, item: object, checkpoints: Mapping[str, note.Checkpoint]) -> None:
    where = f"{section} item {n + 1}"
    if not isinstance(item, dict) or not isinstance(item.get("proof"), dict):
        raise ReportError(f"{where} is malformed")
    origin = item.get("origin")
    cp = checkpoints.get(str(origin))
    if cp is None:
        raise ReportError(f"{where} cites no checkpoint of its origin")
    proof = item["proof"]
    if set(proof) != {"leaf", "body_salt", "body", "inclusion"} or not isinstance(
        proof["inclusion"], list
    ):
        raise ReportError(f"{where}: proof is malformed")
    leaf = unb64(proof["leaf"], f"{where} leaf")
    idx = item.get("leaf_index")
    if type(idx) is not int or not 0 <= idx < cp.size:
        raise ReportError(f"{where}: leaf index outside the checkpoint's tree")
    hashes = [unb64(h, f"{where} proof") for h in proof["inclusion"]]
    try:
        merkle.verify_inclusion(hashes, cp.size, cp.root, idx, merkle.leaf_hash(leaf))
    except merkle.ProofError as exc:
        raise ReportError(f"{where} is not in the signed tree: {exc}") from None
    body = feeds.EntryBody(
        salt=unb64(proof["body_salt"], f"{where} salt"), entry=unb64(proof["body"], f"{where} body")
    )
    try:
        opened = open_leaf(leaf, [], body)
    except LeafError as exc:
        raise ReportError(f"{where}: the body is not the leaf's: {exc}") from None
    if opened.leaf.origin != origin or opened.leaf.entry_id != item.get("entry_id"):
        raise ReportError(f"{where}: origin or entry id is not the leaf's")
    if opened.leaf.event == feeds.EVENT_TYPE_REMOVE:
        raise ReportError(f"{where} cites a removal")
    shown = {k: item.get(k) for k in public_view(opened.entry)}
    if shown != public_view(opened.entry):
        raise ReportError(f"{where} shows values its origin did not log")
    if section_of(opened.entry) != section:
        raise ReportError(f"{where} is in the wrong section")
