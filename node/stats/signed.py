"""The signed statistics file and its offline verification (pure, no I/O).

A **statistics file** is one canonical JSON document ``{"format", "envelope", "roots"}``, as
a report file is (:mod:`node.reports.envelope`): a DSSE envelope (payload type
:data:`PAYLOAD_TYPE`) over the document's canonical JSON, signed by every report key the
issuer's root lists valid at ``issued_at`` (the feed key before root-init), and the issuer's
root metadata from v1 on, so that a verifier holding only its pinned v1 (the peer bundle)
follows the chain to the keys valid at signing time. Any byte changed fails verification.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError as DsseError
from securesystemslib.signer import CryptoSigner, Key

from keys import PeerBundle, SigningKey
from node.errors import ConfigError, VerificationError
from node.feeds.note import MAX_CLOCK_SKEW
from node.keys.roles import FEED, tuf_key
from node.keys.trusted import RootError, TrustedRoot
from node.reports.envelope import open_signed_file, report_keys
from node.reports.payload import ReportError, b64, canonical, unb64

FORMAT: Final = "creditnode-stats/1"
FILE_FORMAT: Final = "creditnode-stats-file/1"
PAYLOAD_TYPE: Final = "application/vnd.creditnode.stats+json"
MAX_FILE_BYTES: Final = 16 * 1024 * 1024


class StatsVerificationError(VerificationError):
    """A statistics file that does not verify (exit 7); the message says why."""


def sign_file(
    payload: dict[str, Any], keys: Sequence[tuple[SigningKey, str]], roots: Sequence[bytes]
) -> bytes:
    """The statistics file: *payload* signed by each (key, key id), with the issuer's root
    chain (empty before root-init)."""
    if not keys:
        raise ConfigError("no report key valid now that this node holds: statistics not signed")
    env = Envelope(payload=canonical(payload), payload_type=PAYLOAD_TYPE, signatures={})
    for key, keyid in keys:
        public = tuf_key(key.verifying_key)
        public.keyid = keyid
        env.sign(CryptoSigner(key.private, public))
    issuer = str(payload["issuer"])
    doc = {
        "format": FILE_FORMAT,
        "envelope": env.to_dict(),
        "roots": {issuer: [b64(r) for r in roots]} if roots else {},
    }
    return canonical(doc) + b"\n"


@dataclass(frozen=True)
class VerifiedStats:
    payload: dict[str, Any]
    issuer: str
    issued_at: dt.datetime
    signed_by: tuple[str, ...]
    root_version: int | None


def _fail(message: str) -> StatsVerificationError:
    return StatsVerificationError(message)


def load_file(data: bytes) -> tuple[Envelope, dict[str, Any], list[bytes]]:
    """Parse a statistics file strictly: (envelope, payload, issuer's root chain)."""
    try:
        env, payload, roots = open_signed_file(
            data, what="statistics", file_format=FILE_FORMAT, payload_type=PAYLOAD_TYPE,
            payload_format=FORMAT, max_bytes=MAX_FILE_BYTES,
        )  # fmt: skip
    except ReportError as exc:
        raise _fail(str(exc)) from None
    if not isinstance(roots, dict) or not set(roots) <= {payload.get("issuer")}:
        raise _fail("the file carries root chains of nodes other than the issuer")
    chain: object = next(iter(roots.values()), [])
    if not isinstance(chain, list):
        raise _fail("the issuer's root chain is not a list")
    try:
        versions = [unb64(r, f"root v{n + 1}") for n, r in enumerate(chain)]
    except ReportError as exc:
        raise _fail(str(exc)) from None
    return env, payload, versions


def _issuer_keys(
    bundle: PeerBundle, chain: list[bytes], at: dt.datetime
) -> tuple[list[Key], str, TrustedRoot | None]:
    """The keys the issuer signs statistics with at *at*: its root's report keys (feed keys
    for a root without report keys), followed from the bundle's pinned v1; the bundle's feed
    key for a node without a root."""
    pinned = bundle.root_v1_bytes
    if pinned is None:
        if chain:
            raise _fail("the file carries a root for the issuer; its bundle pins none")
        return [tuf_key(bundle.verifying_key.public)], FEED, None
    if not chain or chain[0] != pinned:
        raise _fail("the file's root v1 of the issuer is not the one its bundle pins")
    try:
        held = TrustedRoot(chain[0])
        if len(chain) > 1:
            held.update_chain(chain[1:], now=at)
    except RootError as exc:
        raise _fail(f"the issuer's root chain does not verify: {exc}") from None
    keys, role = report_keys(held)
    return keys, role, held


def verify_file(
    data: bytes, bundles: Sequence[PeerBundle], *, now: dt.datetime | None = None
) -> VerifiedStats:
    """Check a statistics file offline against the alliance's peer bundles. Raises
    StatsVerificationError on any defect."""
    now = now or dt.datetime.now(dt.UTC)
    env, payload, chain = load_file(data)
    issuer = payload.get("issuer")
    by_uri = {f"creditnode://{b.federation}/{b.name}": b for b in bundles}
    if not isinstance(issuer, str) or issuer not in by_uri:
        raise _fail("no trusted bundle for the issuer: give its peer bundle with --trust")
    try:
        at = dt.datetime.strptime(str(payload.get("issued_at")), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise _fail("issued_at is not a UTC time") from None
    at = at.replace(tzinfo=dt.UTC)
    if at > now + MAX_CLOCK_SKEW:
        raise _fail("the statistics are dated in the future")
    keys, role, held = _issuer_keys(by_uri[issuer], chain, at)
    if not keys:
        raise _fail(f"the issuer's root lists no {role} key")
    try:
        env.verify(keys, 1)
        # Every signature must verify: a signature line added or altered is an edit too.
        accepted = {
            s.keyid for s in env.signatures.values() for k in keys
            if k.keyid == s.keyid and env.verify([k], 1)
        }  # fmt: skip
    except (DsseError, ValueError):
        raise _fail("the signature does not verify: the statistics were edited or forged") from None
    if len(accepted) != len(env.signatures):
        raise _fail("a signature on the statistics is by no key of the issuer")
    if held is not None and not any(held.key_valid(role, k, at) for k in accepted):
        raise _fail(f"no {role} key that signed was valid at {at.isoformat()}")
    return VerifiedStats(
        payload=payload, issuer=issuer, issued_at=at, signed_by=tuple(sorted(accepted)),
        root_version=None if held is None else held.version,
    )  # fmt: skip
