"""The root ceremony through the CLI: root-init, propose-root, sign-root, publish-root, list."""

from __future__ import annotations

import base64
import datetime as dt
import json
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from tuf.api.serialization.json import JSONSerializer

from keys import read_private_file, sealed_public, unseal
from node.cli import main
from node.home import init_home, load_home
from node.keys.roles import AUDIT, FEED, TRANSPORT, WITNESS, OnlineKey, Window, tuf_key
from node.keys.store import RootStore
from node.keys.trusted import TrustedRoot, parse_root

HOLDERS = ("alice", "bob", "carol")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return " ".join(err.split())  # rich wraps long lines


@pytest.fixture
def home(tmp_path: Path) -> Path:
    root = tmp_path / "jinan"
    init_home(root, name="jinan", region="370100", federation="yellow-river")
    return root


@pytest.fixture
def passphrases(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name in HOLDERS:
        path = tmp_path / f"{name}.pass"
        path.write_text(f"correct horse {name} battery\n", encoding="utf-8")
        files[name] = path
    return files


def root_init(
    capsys: pytest.CaptureFixture[str], home: Path, passphrases: dict[str, Path], *extra: str
) -> tuple[int, str, str]:
    args = [f"--passphrase-file={n}={p}" for n, p in passphrases.items()]
    return run(
        capsys,
        "keys",
        "root-init",
        "--home",
        str(home),
        "--threshold",
        "2",
        "--holders",
        ",".join(HOLDERS),
        *args,
        *extra,
    )


def holder_file(home: Path, name: str) -> Path:
    return home / "keys" / "root-holders" / f"{name}.root-key.json"


def sign_root(
    capsys: pytest.CaptureFixture[str], home: Path, name: str, passphrase: Path
) -> tuple[int, str, str]:
    return run(
        capsys,
        "keys",
        "sign-root",
        "--home",
        str(home),
        "--holder-key",
        str(holder_file(home, name)),
        "--passphrase-file",
        str(passphrase),
    )


def test_root_init_writes_sealed_holder_keys_and_root_v1(
    capsys: pytest.CaptureFixture[str], home: Path, passphrases: dict[str, Path]
) -> None:
    code, out, err = root_init(capsys, home, passphrases)
    assert code == 0, err
    assert "root v1 for creditnode://yellow-river/jinan: 2 of 3 holders" in " ".join(out.split())

    store = RootStore(home)
    assert store.versions() == [1]
    trusted = TrustedRoot(store.read(1))
    content = trusted.content
    assert content.threshold == 2
    assert [content.holder_name(k) for k in content.holders] == list(HOLDERS)

    # The home's online keys, with their windows.
    loaded = load_home(home)
    assert trusted.key_valid(FEED, loaded.signing_key.verifying_key, now())
    cert = loaded.tls.certificate
    assert trusted.key_valid(TRANSPORT, cert.public_key(), now())  # type: ignore[arg-type]
    assert not trusted.key_valid(TRANSPORT, cert.public_key(), cert.not_valid_after_utc)  # type: ignore[arg-type]
    assert trusted.pseudonym_valid(loaded.pseudonym_key.version, now())
    assert not trusted.key_valid(WITNESS, loaded.signing_key.verifying_key, now())

    for name in HOLDERS:
        path = holder_file(home, name)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        data = read_private_file(path)  # refuses anything but 0600
        sealed, private = unseal(data, passphrases[name].read_text().strip())
        raw = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        # Encrypted at rest: the raw key is nowhere in the file, in any common spelling,
        # and the file is not a loadable private key without the passphrase.
        for spelling in (raw, raw.hex().encode(), base64.b64encode(raw)):
            assert spelling not in data
        with pytest.raises(ValueError):
            serialization.load_pem_private_key(data, password=None)
        with pytest.raises(ValueError, match="wrong passphrase"):
            unseal(data, "not the passphrase")
        assert sealed.label == name == sealed_public(data).label
        assert trusted.is_root_key(tuf_key(sealed.public))

    # Once per node.
    code, _, err = root_init(capsys, home, passphrases)
    assert code == 2 and "root-init runs once per node" in error_line(err)


def test_a_tampered_holder_key_file_does_not_open(
    capsys: pytest.CaptureFixture[str], home: Path, passphrases: dict[str, Path]
) -> None:
    assert root_init(capsys, home, passphrases)[0] == 0
    path = holder_file(home, "alice")
    doc = json.loads(path.read_bytes())
    doc["label"] = "mallory"  # authenticated: the passphrase no longer opens it
    with pytest.raises(ValueError, match="wrong passphrase, or the key file was altered"):
        unseal(json.dumps(doc).encode(), passphrases["alice"].read_text().strip())


@pytest.mark.parametrize(
    ("threshold", "holders", "days", "message"),
    [
        ("4", "alice,bob,carol", "365", "--threshold must be between 1 and the 3 holders"),
        ("0", "alice,bob,carol", "365", "--threshold must be between 1 and the 3 holders"),
        ("2", "alice,alice,bob", "365", "a holder is named twice"),
        ("2", "Alice,bob", "365", "holder name 'Alice'"),
        ("2", "alice,bob,carol", "0", "--days must be at least 1"),
        ("2", "alice,bob", "365", "carol is not one of --holders"),
    ],
)
def test_root_init_refuses_bad_options(
    capsys: pytest.CaptureFixture[str],
    home: Path,
    passphrases: dict[str, Path],
    threshold: str,
    holders: str,
    days: str,
    message: str,
) -> None:
    files = [f"--passphrase-file={n}={p}" for n, p in passphrases.items() if n in holders]
    code, _, err = run(
        capsys,
        "keys",
        "root-init",
        "--home",
        str(home),
        "--threshold",
        threshold,
        "--holders",
        holders,
        "--days",
        days,
        *files,
        *([f"--passphrase-file=carol={passphrases['carol']}"] if "carol" not in holders else []),
    )
    assert code == 2
    assert message in error_line(err)
    assert not (home / "keys" / "root").exists()
    assert not (home / "keys" / "root-holders").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [("short\n", "at least 8 characters"), ("\nsecond line\n", "is empty")],
)
def test_root_init_refuses_weak_or_empty_passphrases(
    capsys: pytest.CaptureFixture[str],
    home: Path,
    passphrases: dict[str, Path],
    content: str,
    message: str,
) -> None:
    passphrases["bob"].write_text(content, encoding="utf-8")
    code, _, err = root_init(capsys, home, passphrases)
    assert code == 2 and message in error_line(err)
    assert RootStore(home).versions() == []


def test_root_init_without_a_passphrase_off_a_terminal(
    capsys: pytest.CaptureFixture[str], home: Path, passphrases: dict[str, Path]
) -> None:
    del passphrases["carol"]
    code, _, err = root_init(capsys, home, passphrases)
    assert code == 2 and "no passphrase for holder carol" in error_line(err)


def test_sign_and_publish_the_next_root(
    capsys: pytest.CaptureFixture[str], home: Path, passphrases: dict[str, Path]
) -> None:
    assert root_init(capsys, home, passphrases)[0] == 0
    store = RootStore(home)

    code, _, err = run(capsys, "keys", "publish-root", "--home", str(home))
    assert code == 2 and "no pending root" in error_line(err)

    code, out, err = run(capsys, "keys", "propose-root", "--home", str(home), "--days", "30")
    assert code == 0, err
    assert "pending root v2" in out
    code, _, err = run(capsys, "keys", "propose-root", "--home", str(home))
    assert code == 2 and "publish it or delete it first" in error_line(err)

    code, out, err = sign_root(capsys, home, "alice", passphrases["alice"])
    assert code == 0, err
    flat = " ".join(out.split())
    assert "alice signed root v2" in flat and "needs more" in flat

    # One signature is not enough: refused, nothing published.
    code, _, err = run(capsys, "keys", "publish-root", "--home", str(home))
    assert code == 2
    assert "1 of the 2 signatures required from root v1's keys" in error_line(err)
    assert store.versions() == [1]

    # A wrong passphrase, and a key that is no root key, sign nothing.
    code, _, err = sign_root(capsys, home, "bob", passphrases["carol"])
    assert code == 2 and "wrong passphrase" in error_line(err)
    code, _, err = run(
        capsys,
        "keys",
        "sign-root",
        "--home",
        str(home),
        "--holder-key",
        str(home / "keys" / "feed.key"),
        "--passphrase-file",
        str(passphrases["bob"]),
    )
    assert code == 2 and "not a sealed key file" in error_line(err)

    code, out, err = sign_root(capsys, home, "bob", passphrases["bob"])
    assert code == 0, err
    assert "ready" in out

    code, out, err = run(capsys, "keys", "publish-root", "--home", str(home))
    assert code == 0, err
    assert "root v2 is current" in out
    assert store.versions() == [1, 2]
    assert store.read_pending() is None
    trusted = store.load()
    assert trusted.version == 2
    # What was published is the pending file byte for byte, and it chains from v1.
    chained = TrustedRoot(store.read(1))
    chained.update(store.read(2), now=now())
    assert chained.root.raw == trusted.root.raw


def test_a_holder_of_another_node_cannot_sign(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    home: Path,
    passphrases: dict[str, Path],
) -> None:
    other = tmp_path / "lanzhou"
    init_home(other, name="lanzhou", region="620100", federation="yellow-river")
    assert root_init(capsys, home, passphrases)[0] == 0
    assert root_init(capsys, other, passphrases)[0] == 0
    assert run(capsys, "keys", "propose-root", "--home", str(home))[0] == 0
    code, _, err = run(
        capsys,
        "keys",
        "sign-root",
        "--home",
        str(home),
        "--holder-key",
        str(holder_file(other, "alice")),
        "--passphrase-file",
        str(passphrases["alice"]),
    )
    assert code == 2 and "not a root key of v1 or of pending v2" in error_line(err)


def test_list_shows_every_key_and_its_state(
    capsys: pytest.CaptureFixture[str], home: Path, passphrases: dict[str, Path]
) -> None:
    code, _, err = run(capsys, "keys", "list", "--home", str(home))
    assert code == 3 and "keys root-init" in error_line(err)

    assert root_init(capsys, home, passphrases)[0] == 0
    store = RootStore(home)
    v1 = store.load().content
    feed = v1.online_keys(FEED)[0]
    transport = v1.online_keys(TRANSPORT)[0]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    # v2 (written as the pending root, signed through the CLI): the feed key revoked now, a
    # new feed key, an audit key whose window ended, the transport key dropped.
    new_feed = OnlineKey(FEED, tuf_key(_new_public()), Window(now))
    old_audit = OnlineKey(AUDIT, tuf_key(_new_public()), Window(now - dt.timedelta(days=2), now))
    v2 = (
        v1.next_version(expires=now + dt.timedelta(days=30))
        .with_window_closed(FEED, feed.keyid, now, revoked=True)
        .with_online_key(new_feed)
        .with_online_key(old_audit)
        .without_key(TRANSPORT, transport.keyid)
    )
    store.write_pending(JSONSerializer().serialize(v2.to_metadata()))
    for name in ("alice", "carol"):
        assert sign_root(capsys, home, name, passphrases[name])[0] == 0
    code, _, err = run(capsys, "keys", "publish-root", "--home", str(home))
    assert code == 0, err

    # v3 pending, with a witness key: shown as pending.
    witness = OnlineKey(WITNESS, tuf_key(_new_public()), Window(now))
    v3 = v2.next_version(expires=now + dt.timedelta(days=60)).with_online_key(witness)
    store.write_pending(JSONSerializer().serialize(v3.to_metadata()))

    code, out, err = run(capsys, "keys", "list", "--home", str(home))
    assert code == 0, err
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in out.splitlines()
        if line.startswith("│") and line.split("│")[1].strip()
    ]
    states = {(r[0], r[1]): r[-1] for r in rows}
    short = {k: k[:12] for k in (feed.keyid, new_feed.keyid, old_audit.keyid)}
    assert states[(FEED, short[feed.keyid])] == "revoked"
    assert states[(FEED, short[new_feed.keyid])] == "active"
    assert states[(AUDIT, short[old_audit.keyid])] == "expired"
    assert states[(TRANSPORT, transport.keyid[:12])] == "revoked"  # dropped after v1
    assert states[(WITNESS, witness.keyid[:12])] == "pending"
    assert states[("pseudonym", "v1")] == "active"
    assert sum(1 for role, _ in states if role == "root") == 3
    assert {states[k] for k in states if k[0] == "root"} == {"active"}


def _new_public() -> Ed25519PublicKey:
    return Ed25519PrivateKey.generate().public_key()


def test_pending_root_is_parsed_before_signing(
    capsys: pytest.CaptureFixture[str], home: Path, passphrases: dict[str, Path]
) -> None:
    assert root_init(capsys, home, passphrases)[0] == 0
    store = RootStore(home)
    store.write_pending(store.read(1))  # v1 again is no next version
    code, _, err = sign_root(capsys, home, "alice", passphrases["alice"])
    assert code == 2 and "does not follow v1" in error_line(err)
    # Nor is a root for another node.
    v2 = parse_root(store.read(1)).content.next_version(expires=now() + dt.timedelta(days=1))
    other = replace(v2, node="creditnode://yellow-river/lanzhou")
    store.write_pending(JSONSerializer().serialize(other.to_metadata()))
    code, _, err = sign_root(capsys, home, "alice", passphrases["alice"])
    assert code == 2 and "is for creditnode://yellow-river/lanzhou" in error_line(err)
    # Nor a damaged one.
    store.write_pending(JSONSerializer().serialize(v2.to_metadata())[:-3])
    code, _, err = sign_root(capsys, home, "alice", passphrases["alice"])
    assert code == 2 and "not JSON" in error_line(err)
