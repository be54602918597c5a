"""Enrollment: exporting this node's public bundle and enrolling a peer from one."""

from __future__ import annotations

from pathlib import Path

from keys import PeerBundle
from node import PROTOCOL_VERSION, __version__
from node.errors import EnrollmentError
from node.home import Home
from node.regions import validate_region
from node.storage import Store
from node.storage.peers import PeerRepository


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


async def enroll(home: Home, store: Store, bundle: PeerBundle, *, source: str = "bundle") -> bool:
    """Check the bundle against this node and store it; True if the peer is new."""
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
    return await PeerRepository(store).upsert(bundle)
