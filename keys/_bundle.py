"""The public enrollment bundle a node hands to its partners."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from keys._ca import certificate_fingerprint, issued_by, load_certificate
from keys._identity import NodeIdentity, identity_from_certificate, validate_label
from keys._signing import VerifyingKey

BUNDLE_FORMAT = "creditnode-peer-bundle/v1"


class PeerBundle(BaseModel):
    """Name, region, endpoint, CA certificate and public keys of one node. No secrets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["creditnode-peer-bundle/v1"] = "creditnode-peer-bundle/v1"
    federation: str
    name: str
    region: str
    endpoint: str
    ca_certificate: str
    tls_certificate: str
    feed_key: str
    protocol_version: str
    software_version: str
    # The node's root metadata version 1, exactly as signed, base64 (standard alphabet,
    # padded). Absent for a node without a root of trust (`creditnode keys root-init`).
    root_v1: str | None = None

    @field_validator("federation", "name")
    @classmethod
    def _label(cls, v: str) -> str:
        return validate_label("name", v)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"endpoint {v!r} must be HOST:PORT with a port in 1-65535")
        return v

    @field_validator("root_v1")
    @classmethod
    def _root_v1(cls, v: str | None) -> str | None:
        if v is not None:
            _b64decode(v)
        return v

    @property
    def root_v1_bytes(self) -> bytes | None:
        """Root v1 exactly as the node signed it, or None."""
        return None if self.root_v1 is None else _b64decode(self.root_v1)

    @property
    def identity(self) -> NodeIdentity:
        return NodeIdentity(federation=self.federation, node=self.name)

    @property
    def ca_fingerprint(self) -> str:
        return certificate_fingerprint(load_certificate(self.ca_certificate.encode()))

    @property
    def verifying_key(self) -> VerifyingKey:
        return VerifyingKey.from_text(self.feed_key)

    def check(self) -> None:
        """Raise ValueError unless the bundle is internally consistent."""
        try:
            ca = load_certificate(self.ca_certificate.encode())
            tls = load_certificate(self.tls_certificate.encode())
        except ValueError as exc:
            raise ValueError(f"bundle certificate is not valid PEM: {exc}") from exc
        if identity_from_certificate(tls) != self.identity:
            raise ValueError(
                f"bundle certificate names {identity_from_certificate(tls).uri}, "
                f"bundle says {self.identity.uri}"
            )
        if not issued_by(tls, ca):
            raise ValueError(
                "bundle TLS certificate is not issued by its CA certificate or expired"
            )
        key = self.verifying_key
        if key.name != self.identity.uri:
            raise ValueError(f"feed key is named {key.name!r}, expected {self.identity.uri!r}")

    def to_json(self) -> str:
        # A bundle without a root reads exactly as before the field existed.
        return json.dumps(self.model_dump(exclude_none=True), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PeerBundle:
        """Parse and check a bundle; every problem is a ValueError with one clear line."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON (line {exc.lineno}: {exc.msg})") from exc
        try:
            bundle = cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "bundle"
            raise ValueError(f"field {where}: {err['msg']}") from exc
        bundle.check()
        return bundle


def encode_bundle_root(data: bytes) -> str:
    """The bundle spelling of root metadata bytes (``root_v1``)."""
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError("root_v1 is not base64") from None
    if base64.b64encode(raw).decode("ascii") != text or not raw:
        raise ValueError("root_v1 is not canonical, non-empty base64")
    return raw
