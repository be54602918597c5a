"""Ed25519 private keys sealed under a passphrase (scrypt + AES-256-GCM), as bytes.

Used for the root holders' keys, which live offline with their holders (``creditnode keys
root-init``). This is key code without node concepts, so it sits in ``keys/`` beside the other
key formats; it does no I/O (the caller writes the bytes with :func:`write_private_file`).

A sealed key is a small JSON document::

    {"format": "creditnode-sealed-ed25519/v1", "label": "alice", "public": "<hex>",
     "kdf": {"name": "scrypt", "salt": "<b64>", "n": 131072, "r": 8, "p": 1},
     "cipher": "aes-256-gcm", "nonce": "<b64>", "ciphertext": "<b64>"}

The label, the public key and the KDF parameters are authenticated as GCM associated data, so
neither can be swapped without the passphrase. The public key can be read without it (to find
which root key a file holds); the private key cannot.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

SEALED_FORMAT = "creditnode-sealed-ed25519/v1"
SCRYPT_N = 2**17  # 128 MiB, ~0.3 s: the OWASP recommendation for scrypt
_SCRYPT_N_MIN = 2**14
_SCRYPT_N_MAX = 2**20  # a tampered file must not make us allocate gigabytes
MIN_PASSPHRASE_CHARS = 8


@dataclass(frozen=True)
class SealedKey:
    """A sealed key's public part (readable without the passphrase)."""

    label: str
    public: Ed25519PublicKey

    @property
    def public_raw(self) -> bytes:
        return self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _kdf(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _aad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def seal(
    private: Ed25519PrivateKey, passphrase: str, *, label: str, scrypt_n: int = SCRYPT_N
) -> bytes:
    """The sealed-key document for *private*, encrypted under *passphrase*."""
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise ValueError(f"passphrase must be at least {MIN_PASSPHRASE_CHARS} characters")
    if not _SCRYPT_N_MIN <= scrypt_n <= _SCRYPT_N_MAX or scrypt_n & (scrypt_n - 1):
        raise ValueError("scrypt n must be a power of two in 2^14..2^20")
    salt, nonce = os.urandom(16), os.urandom(12)
    raw = private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    header: dict[str, Any] = {
        "format": SEALED_FORMAT,
        "label": label,
        "public": public.hex(),
        "kdf": {"name": "scrypt", "salt": _b64(salt), "n": scrypt_n, "r": 8, "p": 1},
        "cipher": "aes-256-gcm",
    }
    key = _kdf(passphrase, salt, scrypt_n, 8, 1)
    ciphertext = AESGCM(key).encrypt(nonce, raw, _aad(header))
    doc = {**header, "nonce": _b64(nonce), "ciphertext": _b64(ciphertext)}
    return (json.dumps(doc, indent=2) + "\n").encode()


def _parse(data: bytes) -> tuple[dict[str, Any], SealedKey]:
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != SEALED_FORMAT:
            raise ValueError(f"format is not {SEALED_FORMAT}")
        label = doc["label"]
        if not isinstance(label, str):
            raise TypeError("label is not a string")
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(doc["public"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a sealed key file ({exc})") from None
    return doc, SealedKey(label=label, public=public)


def sealed_public(data: bytes) -> SealedKey:
    """The label and public key of a sealed key (no passphrase needed)."""
    return _parse(data)[1]


def unseal(data: bytes, passphrase: str) -> tuple[SealedKey, Ed25519PrivateKey]:
    """Open a sealed key. ValueError for a wrong passphrase or a damaged file."""
    doc, sealed = _parse(data)
    try:
        kdf = doc["kdf"]
        n, r, p = kdf["n"], kdf["r"], kdf["p"]
        if kdf["name"] != "scrypt" or doc["cipher"] != "aes-256-gcm":
            raise ValueError("unknown kdf or cipher")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p)):
            raise TypeError("kdf parameters must be integers")
        if not _SCRYPT_N_MIN <= n <= _SCRYPT_N_MAX or not 1 <= r <= 32 or not 1 <= p <= 16:
            raise ValueError("kdf parameters out of range")
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(doc["nonce"], validate=True)
        ciphertext = base64.b64decode(doc["ciphertext"], validate=True)
        header = {k: doc[k] for k in ("format", "label", "public", "kdf", "cipher")}
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a sealed key file ({exc})") from None
    try:
        raw = AESGCM(_kdf(passphrase, salt, n, r, p)).decrypt(nonce, ciphertext, _aad(header))
    except (InvalidTag, ValueError):
        raise ValueError("wrong passphrase, or the key file was altered") from None
    private = Ed25519PrivateKey.from_private_bytes(raw)
    mine = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    if mine != sealed.public_raw:
        raise ValueError("sealed key does not match its public key")
    return sealed, private
