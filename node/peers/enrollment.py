"""Enrollment: exporting this node's public bundle and enrolling a peer from one."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from keys import (
    PeerBundle,
    VerifyingKey,
    certificate_fingerprint,
    encode_bundle_root,
    load_certificate,
)
from node import PROTOCOL_VERSION, __version__
from node.errors import EnrollmentError
from node.home import Home
from node.keys.roles import FEED
from node.keys.store import RootStore
from node.keys.trusted import RootError, TrustedRoot
from node.regions import validate_region
from node.storage import PeerRecord, Store
from node.storage.peers import PeerRepository, root_sha256


def ca_fingerprint(pem: str) -> str:
    """SHA-256 over the CA certificate's DER, hex: what partners compare out of band
    (``openssl x509 -noout -fingerprint -sha256`` prints the same digits)."""
    return certificate_fingerprint(load_certificate(pem.encode()))


def feed_key_fingerprint(text: str) -> str:
    """SHA-256 over the raw Ed25519 feed key, hex."""
    return hashlib.sha256(VerifyingKey.from_text(text).raw).hexdigest()


@dataclass(frozen=True)
class KeyChange:
    """A key of an enrolled peer that a re-enrollment replaces."""

    what: str  # "CA", "feed key" or "root v1"
    old: str  # SHA-256 fingerprint, hex ("none": nothing pinned)
    new: str

    def describe(self, fingerprint: str) -> str:
        return f"no {self.what}" if fingerprint == "none" else f"{self.what} SHA-256 {fingerprint}"


@dataclass(frozen=True)
class PinnedRoot:
    """The root v1 a bundle carried, verified and pinned for the peer."""

    sha256: str
    holders: int
    threshold: int


@dataclass(frozen=True)
class Enrolled:
    created: bool
    ca_fingerprint: str
    replaced: tuple[KeyChange, ...] = ()
    root: PinnedRoot | None = None


def key_changes(record: PeerRecord, bundle: PeerBundle) -> tuple[KeyChange, ...]:
    """The keys *bundle* would replace in the enrolled *record*."""
    changes = []
    if record.ca_certificate.strip() != bundle.ca_certificate.strip():
        changes.append(
            KeyChange(
                "CA", ca_fingerprint(record.ca_certificate), ca_fingerprint(bundle.ca_certificate)
            )
        )
    if record.feed_key != bundle.feed_key:
        changes.append(
            KeyChange(
                "feed key",
                feed_key_fingerprint(record.feed_key),
                feed_key_fingerprint(bundle.feed_key),
            )
        )
    pinned = root_sha256(bundle.root_v1_bytes)
    if record.root_v1_sha256 != pinned:
        changes.append(KeyChange("root v1", record.root_v1_sha256 or "none", pinned or "none"))
    return tuple(changes)


def own_root_v1(home: Home) -> bytes | None:
    """This node's root version 1 exactly as signed, or None before ``keys root-init``.
    Checked as a peer will check it (self-signed, this node's, listing ``keys/feed.key``)."""
    store = RootStore(home.paths.root)
    if 1 not in store.versions():
        return None
    path = store.path(1)
    try:
        data = store.read(1)
        trusted = TrustedRoot(data)
    except (OSError, RootError) as exc:
        raise EnrollmentError(f"{path}: {exc}") from None
    if trusted.node != home.identity.uri:
        raise EnrollmentError(f"{path} is for {trusted.node}, this node is {home.identity.uri}")
    if not trusted.entries(FEED, home.signing_key.verifying_key):
        raise EnrollmentError(
            f"{path} does not list {home.paths.feed_key}'s key in its feed role; partners "
            "would refuse the bundle"
        )
    return data


def check_root_v1(bundle: PeerBundle, source: str) -> PinnedRoot | None:
    """Verify the bundle's root v1 (a threshold of its own holders' signatures), that it is
    the bundle's node's, and that it lists the bundle's feed key. None if it carries none."""
    data = bundle.root_v1_bytes
    if data is None:
        return None
    try:
        trusted = TrustedRoot(data)
    except RootError as exc:
        raise EnrollmentError(f"{source}: root_v1 refused: {exc}") from None
    if trusted.version != 1:
        raise EnrollmentError(f"{source}: root_v1 is root version {trusted.version}, not 1")
    if trusted.node != bundle.identity.uri:
        raise EnrollmentError(
            f"{source}: root_v1 is the root of {trusted.node}, the bundle is {bundle.identity.uri}"
        )
    if not trusted.entries(FEED, bundle.verifying_key):
        raise EnrollmentError(
            f"{source}: the bundle's feed key (SHA-256 {feed_key_fingerprint(bundle.feed_key)}) "
            "is not listed in the feed role of its root_v1"
        )
    content = trusted.content
    return PinnedRoot(root_sha256(data), len(content.holders), content.threshold)


def export_bundle(home: Home, *, endpoint: str | None = None) -> PeerBundle:
    """This node's bundle; *endpoint* defaults to ``advertise``, then ``listen``."""
    s = home.settings
    root_v1 = own_root_v1(home)
    ep = endpoint or s.advertise or s.listen
    if ep.endswith(":0"):
        raise EnrollmentError(
            f"{home.paths.config}: listen port is 0 and no advertise address is set; "
            'set advertise = "HOST:PORT" so partners know where to dial'
        )
    return PeerBundle(
        federation=s.federation,
        name=s.name,
        region=s.region,
        endpoint=ep,
        ca_certificate=home.tls.ca_pem.decode(),
        tls_certificate=home.tls.cert_pem.decode(),
        feed_key=home.signing_key.verifying_key.to_text(),
        protocol_version=PROTOCOL_VERSION,
        software_version=__version__,
        root_v1=None if root_v1 is None else encode_bundle_root(root_v1),
    )


def read_bundle(path: Path) -> PeerBundle:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EnrollmentError(f"{path}: no such bundle file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EnrollmentError(f"{path}: cannot read ({exc})") from None
    try:
        return PeerBundle.from_json(text)
    except ValueError as exc:
        raise EnrollmentError(f"{path}: {exc}") from None


async def enroll(
    home: Home,
    store: Store,
    bundle: PeerBundle,
    *,
    source: str = "bundle",
    replace: bool = False,
    guard: Callable[[PeerRecord], None] | None = None,
) -> Enrolled:
    """Check the bundle against this node and store it. Re-enrolling a peer with another CA,
    feed key or root v1 needs *replace*: otherwise EnrollmentError naming both fingerprints
    of each. A bundle's root v1 is verified and pinned as the peer's root of trust; without
    one, the enrolled feed key is the only key trusted for the peer's feed.

    With *guard*, only an enrolled peer is re-enrolled (EnrollmentError otherwise), and
    *guard* sees its record in the same transaction first and may refuse by raising."""
    if bundle.federation != home.settings.federation:
        raise EnrollmentError(
            f"{source}: peer {bundle.name} belongs to federation {bundle.federation}, "
            f"this node to {home.settings.federation}"
        )
    if bundle.name == home.settings.name:
        raise EnrollmentError(f"{source}: that is this node's own bundle")
    if bundle.protocol_version != PROTOCOL_VERSION:
        raise EnrollmentError(
            f"{source}: peer speaks protocol {bundle.protocol_version}, "
            f"this node {PROTOCOL_VERSION}"
        )
    try:
        validate_region(bundle.region)
    except ValueError as exc:
        raise EnrollmentError(f"{source}: {exc}") from None
    pinned = check_root_v1(bundle, source)
    replaced: tuple[KeyChange, ...] = ()

    def check(record: PeerRecord) -> None:
        nonlocal replaced
        if guard is not None:
            guard(record)
        replaced = key_changes(record, bundle)
        if replaced and not replace:
            olds = " and ".join(c.describe(c.old) for c in replaced)
            news = " and ".join(c.describe(c.new) for c in replaced)
            raise EnrollmentError(
                f"{source}: peer {bundle.name} is enrolled with {olds}; the bundle has {news}. "
                f"Check the new {'fingerprint' if len(replaced) == 1 else 'fingerprints'} with "
                f"{bundle.name} out of band, then add --replace"
            )

    try:
        created = await PeerRepository(store).upsert(
            bundle, check=check, root_v1=bundle.root_v1_bytes, create=guard is None
        )
    except LookupError:
        raise EnrollmentError(
            f"{source}: no enrolled peer named {bundle.name}; enroll it with `peer add`"
        ) from None
    return Enrolled(created, ca_fingerprint(bundle.ca_certificate), replaced, pinned)


@dataclass(frozen=True)
class Repin:
    """A peer's pinned root v1 and the one a bundle would pin instead (SHA-256 of the exact
    root v1 bytes, hex; old is "none" if nothing is pinned)."""

    peer: str
    old: str
    new: str
    others: tuple[KeyChange, ...]  # other keys the bundle replaces (the feed key)


async def repin_preview(store: Store, bundle: PeerBundle, *, source: str = "bundle") -> Repin:
    """What re-pinning the bundle's peer to the bundle's root v1 changes. EnrollmentError if
    the bundle has no root v1 (or one that does not verify), the peer is not enrolled, the
    root is the one already pinned, or the bundle also changes the CA (that is a re-enrollment:
    `peer add --replace`)."""
    if bundle.root_v1_bytes is None:
        raise EnrollmentError(f"{source}: the bundle carries no root v1; nothing to re-pin")
    check_root_v1(bundle, source)
    record = await PeerRepository(store).get(bundle.name)
    if record is None:
        raise EnrollmentError(
            f"{source}: no enrolled peer named {bundle.name}; enroll it with `peer add`"
        )
    return _repin_of(record, bundle, source)


def _repin_of(record: PeerRecord, bundle: PeerBundle, source: str) -> Repin:
    changes = key_changes(record, bundle)
    root = [c for c in changes if c.what == "root v1"]
    if not root:
        raise EnrollmentError(
            f"{source}: {bundle.name} already pins this root v1 (SHA-256 "
            f"{record.root_v1_sha256}); nothing to re-pin"
        )
    others = tuple(c for c in changes if c.what != "root v1")
    if any(c.what == "CA" for c in others):
        raise EnrollmentError(
            f"{source}: the bundle also changes {bundle.name}'s CA; that is a re-enrollment: "
            "check both fingerprints out of band and use `peer add --replace`"
        )
    return Repin(bundle.name, root[0].old, root[0].new, others)


async def repin(
    home: Home, store: Store, bundle: PeerBundle, *, confirm: str, source: str = "bundle"
) -> Enrolled:
    """Re-pin an enrolled peer to the bundle's root v1 if *confirm* is its fingerprint: the
    held chain is dropped and the new v1 kept in one transaction, through :func:`enroll` (as
    `peer add --replace`), so a running node cuts the peer's calls and rebuilds its follower.
    EnrollmentError (nothing changed) if what is pinned moved since *confirm* was shown."""
    shown = await repin_preview(store, bundle, source=source)
    if confirm.strip().lower() != shown.new:
        raise EnrollmentError(f"{source}: --confirm {confirm} is not the new root's fingerprint")

    def guard(record: PeerRecord) -> None:
        if _repin_of(record, bundle, source) != shown:
            raise EnrollmentError(f"{source}: {bundle.name}'s enrollment changed meanwhile")

    return await enroll(home, store, bundle, source=source, replace=True, guard=guard)
