"""Key and certificate code for creditnode (never key material).

Example::

    from keys import FederationCA, NodeIdentity, generate_tls_key, identity_from_certificate

    ca = FederationCA.create("yellow-river")
    key = generate_tls_key()
    cert = ca.issue_node_certificate(NodeIdentity("yellow-river", "jinan"), key.public_key())
    assert identity_from_certificate(cert).uri == "creditnode://yellow-river/jinan"
"""

from keys._bundle import BUNDLE_FORMAT, PeerBundle, encode_bundle_root
from keys._ca import (
    FederationCA,
    certificate_fingerprint,
    generate_tls_key,
    issued_by,
    load_certificate,
    private_key_pem,
)
from keys._files import read_private_file, write_private_file, write_public_file
from keys._identity import NodeIdentity, identity_from_certificate, validate_label
from keys._officer import (
    OFFICER_SCHEME,
    OfficerCredential,
    OfficerIdentity,
    is_officer_certificate,
    issue_officer_certificate,
    new_officer_credential,
    new_officer_id,
    officer_from_certificate,
)
from keys._sealed import SEALED_FORMAT, SealedKey, seal, sealed_public, unseal
from keys._signing import SigningKey, VerifyingKey, key_hash

__all__ = [
    "BUNDLE_FORMAT",
    "OFFICER_SCHEME",
    "SEALED_FORMAT",
    "FederationCA",
    "NodeIdentity",
    "OfficerCredential",
    "OfficerIdentity",
    "PeerBundle",
    "SealedKey",
    "SigningKey",
    "VerifyingKey",
    "certificate_fingerprint",
    "encode_bundle_root",
    "generate_tls_key",
    "identity_from_certificate",
    "is_officer_certificate",
    "issue_officer_certificate",
    "issued_by",
    "key_hash",
    "load_certificate",
    "new_officer_credential",
    "new_officer_id",
    "officer_from_certificate",
    "private_key_pem",
    "read_private_file",
    "seal",
    "sealed_public",
    "unseal",
    "validate_label",
    "write_private_file",
    "write_public_file",
]
