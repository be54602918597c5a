"""Enrollment: exporting this node's public bundle and enrolling a peer from one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from keys import PeerBundle, VerifyingKey, certificate_fingerprint, load_certificate
from node import PROTOCOL_VERSION, __version__
from node.errors import EnrollmentError
from node.home import Home
from node.regions import validate_region
from node.storage import PeerRecord, Store
from node.storage.peers import PeerRepository


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

    what: str  # "CA" or "feed key"
    old: str  # SHA-256 fingerprint, hex
    new: str


@dataclass(frozen=True)
class Enrolled:
    created: bool
    ca_fingerprint: str
    replaced: tuple[KeyChange, ...] = ()


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
    return tuple(changes)


def export_bundle(home: Home, *, endpoint: str | None = None) -> PeerBundle:
    """This node's bundle; *endpoint* defaults to ``advertise``, then ``listen``."""
    s = home.settings
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
    home: Home, store: Store, bundle: PeerBundle, *, source: str = "bundle", replace: bool = False
) -> Enrolled:
    """Check the bundle against this node and store it. Re-enrolling a peer with another CA or
    feed key needs *replace*: otherwise EnrollmentError naming both fingerprints of each."""
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
    replaced: tuple[KeyChange, ...] = ()

    def check(record: PeerRecord) -> None:
        nonlocal replaced
        replaced = key_changes(record, bundle)
        if replaced and not replace:
            olds = " and ".join(f"{c.what} SHA-256 {c.old}" for c in replaced)
            news = " and ".join(f"{c.what} SHA-256 {c.new}" for c in replaced)
            raise EnrollmentError(
                f"{source}: peer {bundle.name} is enrolled with {olds}; the bundle has {news}. "
                f"Check the new {'fingerprint' if len(replaced) == 1 else 'fingerprints'} with "
                f"{bundle.name} out of band, then add --replace"
            )

    created = await PeerRepository(store).upsert(bundle, check=check)
    return Enrolled(created, ca_fingerprint(bundle.ca_certificate), replaced)
