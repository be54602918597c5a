"""Node identities as carried in certificates: ``creditnode://FEDERATION/NODE`` URI SANs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509

SCHEME = "creditnode"
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def validate_label(kind: str, value: str) -> str:
    """Return *value* if it is a DNS label (lower-case letters, digits, inner hyphens)."""
    if not _LABEL.fullmatch(value):
        raise ValueError(
            f"{kind} {value!r} must be 1-63 lower-case letters, digits or inner hyphens"
        )
    return value


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Who a node is inside a federation."""

    federation: str
    node: str

    def __post_init__(self) -> None:
        validate_label("federation name", self.federation)
        validate_label("node name", self.node)

    @property
    def uri(self) -> str:
        return f"{SCHEME}://{self.federation}/{self.node}"

    @property
    def dns_name(self) -> str:
        """The name a client checks the server certificate against, whatever address it dials."""
        return f"{self.node}.{self.federation}.{SCHEME}"

    @classmethod
    def parse(cls, uri: str) -> NodeIdentity:
        prefix = f"{SCHEME}://"
        if not uri.startswith(prefix):
            raise ValueError(f"not a creditnode identity URI: {uri!r}")
        parts = uri[len(prefix) :].split("/")
        if len(parts) != 2:
            raise ValueError(f"identity URI must be {prefix}FEDERATION/NODE: {uri!r}")
        return cls(federation=parts[0], node=parts[1])

    def __str__(self) -> str:
        return self.uri


def identity_from_certificate(cert: x509.Certificate) -> NodeIdentity:
    """The single creditnode URI SAN of *cert*; anything else is an error."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise ValueError("certificate has no subjectAltName") from exc
    uris = [
        u
        for u in san.get_values_for_type(x509.UniformResourceIdentifier)
        if u.startswith(f"{SCHEME}://")
    ]
    if len(uris) != 1:
        raise ValueError(f"certificate must carry exactly one {SCHEME}:// URI SAN, has {len(uris)}")
    return NodeIdentity.parse(uris[0])
