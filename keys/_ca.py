"""A federation certificate authority for development and demos, and node certificates.

Production federations run their own CA; this one exists so a newcomer can stand a federation
up on one machine. It issues each node a certificate whose only identity is a
``creditnode://FEDERATION/NODE`` URI SAN (plus a DNS name clients pin the server to).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keys._files import read_private_file, write_private_file, write_public_file
from keys._identity import NodeIdentity, validate_label

# A node's or an officer's certificate: it signs the TLS handshake and nothing else.
LEAF_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"


def generate_tls_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_certificate(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 over the DER certificate, hex."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class FederationCA:
    """A CA that issues node certificates for one federation."""

    federation: str
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, federation: str, *, days: int = 3650) -> FederationCA:
        validate_label("federation name", federation)
        key = generate_tls_key()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, federation),
                x509.NameAttribute(NameOID.COMMON_NAME, f"creditnode federation CA {federation}"),
            ]
        )
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(federation=federation, certificate=cert, private_key=key)

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def save(self, directory: Path) -> None:
        write_public_file(directory / CA_CERT_FILE, self.certificate_pem)
        write_private_file(directory / CA_KEY_FILE, private_key_pem(self.private_key))

    @classmethod
    def load(cls, directory: Path) -> FederationCA:
        cert = load_certificate((directory / CA_CERT_FILE).read_bytes())
        key = serialization.load_pem_private_key(
            read_private_file(directory / CA_KEY_FILE), password=None
        )
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{directory / CA_KEY_FILE} is not an EC private key")
        orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        if not orgs:
            raise ValueError(f"{directory / CA_CERT_FILE} names no federation")
        return cls(federation=str(orgs[0].value), certificate=cert, private_key=key)

    def issue_node_certificate(
        self,
        identity: NodeIdentity,
        public_key: ec.EllipticCurvePublicKey,
        *,
        days: int = 825,
    ) -> x509.Certificate:
        if identity.federation != self.federation:
            raise ValueError(f"CA of federation {self.federation!r} cannot certify {identity.uri}")
        now = _now()
        return (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, identity.federation),
                        x509.NameAttribute(NameOID.COMMON_NAME, identity.node),
                    ]
                )
            )
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.UniformResourceIdentifier(identity.uri),
                        x509.DNSName(identity.dns_name),
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [
                        ExtendedKeyUsageOID.SERVER_AUTH,
                        ExtendedKeyUsageOID.CLIENT_AUTH,
                    ]
                ),
                critical=False,
            )
            .add_extension(
                LEAF_KEY_USAGE,
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key()),
                critical=False,
            )
            .sign(self.private_key, hashes.SHA256())
        )


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """True if *ca* signed *cert* directly and *cert* is within its validity period."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, Exception):
        return False
    now = _now()
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
