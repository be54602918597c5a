"""Officer credentials: client certificates whose only identity is a
``creditnode-officer://FEDERATION/NODE/OFFICER_ID`` URI SAN, and the PKCS#12 files they travel in.

The scheme differs from a node's ``creditnode://`` on purpose: the peer gate finds no node
identity in an officer certificate (so it is never a peer), and the officer gate accepts
nothing but this scheme (so a peer is never an officer). The officer id is random (32 hex), so
the certificate names nobody; the name stays in the issuing node's database.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keys._ca import LEAF_KEY_USAGE, FederationCA, generate_tls_key
from keys._identity import NodeIdentity

OFFICER_SCHEME = "creditnode-officer"
_OFFICER_ID = re.compile(r"[0-9a-f]{32}")


def new_officer_id() -> str:
    """A fresh random officer id (128 bits, hex): it reveals nothing about the officer."""
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class OfficerIdentity:
    """An officer of one node."""

    node: NodeIdentity
    officer: str

    def __post_init__(self) -> None:
        if not _OFFICER_ID.fullmatch(self.officer):
            raise ValueError("officer id must be 32 lower-case hex digits")

    @property
    def uri(self) -> str:
        return f"{OFFICER_SCHEME}://{self.node.federation}/{self.node.node}/{self.officer}"

    @classmethod
    def parse(cls, uri: str) -> OfficerIdentity:
        prefix = f"{OFFICER_SCHEME}://"
        if not uri.startswith(prefix):
            raise ValueError("not an officer identity URI")
        parts = uri[len(prefix) :].split("/")
        if len(parts) != 3:
            raise ValueError(f"officer URI must be {prefix}FEDERATION/NODE/OFFICER_ID")
        return cls(NodeIdentity(parts[0], parts[1]), parts[2])

    def __str__(self) -> str:
        return self.uri


def is_officer_certificate(cert: x509.Certificate) -> bool:
    """True if *cert* carries any officer URI SAN (whatever else it carries)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return any(
        u.startswith(f"{OFFICER_SCHEME}://")
        for u in san.get_values_for_type(x509.UniformResourceIdentifier)
    )


def officer_from_certificate(cert: x509.Certificate) -> OfficerIdentity:
    """The single officer URI SAN of *cert*, which must carry no other URI; else ValueError."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise ValueError("certificate has no subjectAltName") from exc
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1 or not uris[0].startswith(f"{OFFICER_SCHEME}://"):
        raise ValueError(f"certificate must carry exactly one {OFFICER_SCHEME}:// URI and no other")
    return OfficerIdentity.parse(uris[0])


def issue_officer_certificate(
    ca: FederationCA,
    identity: OfficerIdentity,
    public_key: ec.EllipticCurvePublicKey,
    *,
    days: int = 365,
) -> x509.Certificate:
    """A client-only certificate (EKU clientAuth) for *identity*; its subject names only the
    officer id."""
    if identity.node.federation != ca.federation:
        raise ValueError(f"CA of federation {ca.federation!r} cannot certify {identity.uri}")
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, identity.node.federation),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, identity.node.node),
                    x509.NameAttribute(NameOID.COMMON_NAME, identity.officer),
                ]
            )
        )
        .issuer_name(ca.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.uri)]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            LEAF_KEY_USAGE,
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
            critical=False,
        )
        .sign(ca.private_key, hashes.SHA256())
    )


@dataclass(frozen=True)
class OfficerCredential:
    """What an officer holds: key, certificate, and the CA that issued it (the node's)."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    ca: x509.Certificate

    @property
    def identity(self) -> OfficerIdentity:
        return officer_from_certificate(self.certificate)

    def pem(self) -> tuple[bytes, bytes, bytes]:
        """(certificate, private key, CA) PEM, for a TLS client."""
        enc = serialization.Encoding.PEM
        key = self.key.private_bytes(
            enc, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return self.certificate.public_bytes(enc), key, self.ca.public_bytes(enc)

    def to_pkcs12(self, passphrase: bytes) -> bytes:
        """A PKCS#12 file encrypted under *passphrase* (AES-256, PBKDF2)."""
        if not passphrase:
            raise ValueError("a PKCS#12 credential needs a passphrase")
        return pkcs12.serialize_key_and_certificates(
            name=self.identity.officer.encode(),
            key=self.key,
            cert=self.certificate,
            cas=[self.ca],
            encryption_algorithm=serialization.BestAvailableEncryption(passphrase),
        )

    @classmethod
    def from_pkcs12(cls, data: bytes, passphrase: bytes) -> OfficerCredential:
        """Open a PKCS#12 credential; ValueError if the passphrase is wrong or it is not one."""
        try:
            key, cert, cas = pkcs12.load_key_and_certificates(data, passphrase)
        except (ValueError, TypeError) as exc:
            raise ValueError("cannot open the credential (wrong passphrase, or not PKCS#12)") from (
                exc
            )
        if not isinstance(key, ec.EllipticCurvePrivateKey) or cert is None or not cas:
            raise ValueError("the credential lacks its EC key, certificate or CA")
        cred = cls(key, cert, cas[0])
        cred.identity  # noqa: B018 - raises ValueError if it is not an officer's certificate
        return cred


def new_officer_credential(
    ca: FederationCA, identity: OfficerIdentity, *, days: int = 365
) -> OfficerCredential:
    key = generate_tls_key()
    cert = issue_officer_certificate(ca, identity, key.public_key(), days=days)
    return OfficerCredential(key, cert, ca.certificate)
