"""Ed25519 node signing keys (feed checkpoints, evidence) and their C2SP key hashes."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

_ED25519_ALG = b"\x01"  # signed-note signature type for Ed25519


def key_hash(name: str, public_raw: bytes) -> bytes:
    """The 4-byte key hash of a C2SP signed-note Ed25519 key."""
    return hashlib.sha256(name.encode() + b"\n" + _ED25519_ALG + public_raw).digest()[:4]


@dataclass(frozen=True)
class VerifyingKey:
    """A named Ed25519 public key."""

    name: str
    public: Ed25519PublicKey

    @property
    def raw(self) -> bytes:
        return self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def key_hash(self) -> bytes:
        return key_hash(self.name, self.raw)

    def __post_init__(self) -> None:
        if "+" in self.name or any(c.isspace() for c in self.name):
            raise ValueError(f"key name {self.name!r} must not contain '+' or whitespace")

    def to_text(self) -> str:
        """``name+hash+base64`` as in C2SP signed-note verifier keys."""
        return (
            f"{self.name}+{self.key_hash.hex()}+"
            + base64.b64encode(_ED25519_ALG + self.raw).decode()
        )

    @classmethod
    def from_text(cls, text: str) -> VerifyingKey:
        try:
            # Names never contain "+"; base64 may, so split from the left.
            name, hash_hex, b64 = text.split("+", 2)
            blob = base64.b64decode(b64, validate=True)
        except ValueError as exc:
            raise ValueError("verifier key must be NAME+HASH+BASE64") from exc
        if len(blob) != 33 or blob[:1] != _ED25519_ALG:
            raise ValueError("verifier key is not an Ed25519 key")
        key = cls(name=name, public=Ed25519PublicKey.from_public_bytes(blob[1:]))
        if key.key_hash.hex() != hash_hex:
            raise ValueError("verifier key hash does not match its name and key")
        return key

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            self.public.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """A named Ed25519 private key."""

    name: str
    private: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        return cls(name=name, private=Ed25519PrivateKey.generate())

    @property
    def verifying_key(self) -> VerifyingKey:
        return VerifyingKey(name=self.name, public=self.private.public_key())

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)

    def to_pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pem(cls, name: str, pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("signing key is not Ed25519")
        return cls(name=name, private=key)
