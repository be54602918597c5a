from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys import (
    FederationCA,
    NodeIdentity,
    PeerBundle,
    SigningKey,
    VerifyingKey,
    generate_tls_key,
    identity_from_certificate,
    issued_by,
    key_hash,
    read_private_file,
    write_private_file,
)
from node.home import init_home, load_home
from node.peers.enrollment import export_bundle

labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)


@given(labels, labels)
def test_identity_uri_roundtrips(federation: str, node: str) -> None:
    ident = NodeIdentity(federation, node)
    assert NodeIdentity.parse(ident.uri) == ident
    assert ident.dns_name == f"{node}.{federation}.creditnode"


@given(st.text(max_size=80))
def test_identity_parser_only_raises_value_error(text: str) -> None:
    try:
        ident = NodeIdentity.parse(text)
    except ValueError:
        return
    assert ident.uri == text


@pytest.mark.parametrize("bad", ["Jinan", "-jinan", "jinan-", "ji_nan", "", "a" * 64, "济南"])
def test_bad_labels_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="lower-case"):
        NodeIdentity("yellow-river", bad)


def test_node_certificate_carries_exactly_the_identity() -> None:
    ca = FederationCA.create("yellow-river")
    other = FederationCA.create("yellow-river")
    key = generate_tls_key()
    ident = NodeIdentity("yellow-river", "jinan")
    cert = ca.issue_node_certificate(ident, key.public_key())
    assert identity_from_certificate(cert) == ident
    assert issued_by(cert, ca.certificate)
    assert not issued_by(cert, other.certificate)
    with pytest.raises(ValueError, match="cannot certify"):
        ca.issue_node_certificate(NodeIdentity("jing-jin-ji", "beijing"), key.public_key())


def test_private_files_are_0600_and_refused_when_readable(tmp_path: Path) -> None:
    path = tmp_path / "k" / "secret.key"
    write_private_file(path, b"secret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_private_file(path) == b"secret"
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="0600"):
        read_private_file(path)


def test_home_keys_are_private(tmp_path: Path) -> None:
    paths = init_home(tmp_path / "h", name="jinan", region="370100", federation="yellow-river")
    for secret in (paths.tls_key, paths.feed_key, paths.own_ca / "ca.key"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert stat.S_IMODE(paths.root.stat().st_mode) == 0o700


def test_verifying_key_text_roundtrip_and_hash_check() -> None:
    key = SigningKey.generate("creditnode://yellow-river/jinan")
    text = key.verifying_key.to_text()
    parsed = VerifyingKey.from_text(text)
    assert parsed.raw == key.verifying_key.raw
    assert parsed.key_hash == key_hash("creditnode://yellow-river/jinan", parsed.raw)
    assert parsed.verify(key.sign(b"msg"), b"msg")
    assert not parsed.verify(key.sign(b"msg"), b"msh")
    name, _hash, b64 = text.split("+", 2)
    with pytest.raises(ValueError, match="hash"):
        VerifyingKey.from_text(f"{name}+{'0' * 8}+{b64}")


def test_verifying_key_text_roundtrips_whatever_the_base64() -> None:
    # Base64 of a key often contains "+"; 200 keys make one without it vanishingly unlikely.
    for _ in range(200):
        key = SigningKey.generate("creditnode://yellow-river/jinan").verifying_key
        assert VerifyingKey.from_text(key.to_text()).raw == key.raw


def _bundle(tmp_path: Path) -> PeerBundle:
    init_home(
        tmp_path / "jinan",
        name="jinan",
        region="370100",
        federation="yellow-river",
        advertise="127.0.0.1:7001",
    )
    return export_bundle(load_home(tmp_path / "jinan"))


def test_bundle_roundtrip(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    again = PeerBundle.from_json(bundle.to_json())
    assert again == bundle
    assert again.identity.uri == "creditnode://yellow-river/jinan"
    assert "PRIVATE" not in bundle.to_json()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "lanzhou", "bundle certificate names"),
        ("endpoint", "nowhere", "endpoint"),
        ("format", "creditnode-peer-bundle/v0", "format"),
        ("surprise", "x", "surprise"),
    ],
)
def test_tampered_bundles_are_refused(tmp_path: Path, field: str, value: str, message: str) -> None:
    data = json.loads(_bundle(tmp_path).to_json())
    data[field] = value
    with pytest.raises(ValueError, match=message):
        PeerBundle.from_json(json.dumps(data))


def test_bundle_with_foreign_ca_is_refused(tmp_path: Path) -> None:
    data = json.loads(_bundle(tmp_path).to_json())
    data["ca_certificate"] = FederationCA.create("yellow-river").certificate_pem.decode()
    with pytest.raises(ValueError, match="not issued by its CA"):
        PeerBundle.from_json(json.dumps(data))
