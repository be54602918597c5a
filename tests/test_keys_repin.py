"""Issue 12, items 4 and 7: `peer repin` after a peer lost its root, root versions and the
own root's expiry warning in `status`, and `keys prune` of retired private feed keys."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from node.cli import main
from node.cli.status import root_expiries
from node.home import init_home, load_home
from node.keys.ceremony import HolderKey, root_init, rotate_key
from node.keys.roles import FEED
from node.keys.signers import feed_key_files
from node.keys.store import RootStore
from node.storage import Store
from node.storage.peers import PeerRepository

PASSPHRASE = "correct horse battery staple"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, " ".join(captured.out.split()), " ".join(captured.err.split())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_home(tmp_path: Path, name: str, region: str) -> Path:
    root = tmp_path / name
    init_home(
        root,
        name=name,
        region=region,
        federation="yellow-river",
        listen=f"127.0.0.1:{free_port()}",
    )
    return root


def make_root(home: Path, *, days: int = 365) -> list[HolderKey]:
    result = root_init(
        home,
        holders=["alice"],
        threshold=1,
        passphrases={"alice": PASSPHRASE},
        out_dir=home / "keys" / "root-holders",
        now=now(),
        days=days,
    )
    return [HolderKey(p.read_bytes(), PASSPHRASE, p.name) for p in result.holder_files]


def export(capsys: pytest.CaptureFixture[str], home: Path, out: Path) -> Path:
    code, _, err = run(capsys, "peer", "export", "--home", str(home), "--out", str(out))
    assert code == 0, err
    return out


async def _held(home: Path, peer: str) -> tuple[str, tuple[int, bytes] | None, int]:
    async with Store.opened(load_home(home).database_url) as store:
        repo = PeerRepository(store)
        record = await repo.get(peer)
        assert record is not None
        return record.root_v1_sha256, await repo.held_root(peer), await repo.generation()


def held(home: Path, peer: str) -> tuple[str, tuple[int, bytes] | None, int]:
    return asyncio.run(_held(home, peer))


@pytest.fixture
def pair(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    """Jinan enrolled Lanzhou with Lanzhou's root v1 pinned."""
    jinan = make_home(tmp_path, "jinan", "370100")
    lanzhou = make_home(tmp_path, "lanzhou", "620100")
    make_root(lanzhou)
    bundle = export(capsys, lanzhou, tmp_path / "lanzhou.bundle.json")
    code, _, err = run(capsys, "peer", "add", "--home", str(jinan), str(bundle))
    assert code == 0, err
    return jinan, lanzhou


def lose_root(lanzhou: Path) -> None:
    """Lanzhou loses its whole root (every holder key) and makes a new v1."""
    shutil.rmtree(lanzhou / "keys" / "root")
    shutil.rmtree(lanzhou / "keys" / "root-holders")
    make_root(lanzhou)


def test_repin_needs_the_new_fingerprint(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jinan, lanzhou = pair
    old_bytes = RootStore(lanzhou).read(1)
    old = hashlib.sha256(old_bytes).hexdigest()
    lose_root(lanzhou)
    new_bytes = RootStore(lanzhou).read(1)
    new = hashlib.sha256(new_bytes).hexdigest()
    assert new != old
    bundle = export(capsys, lanzhou, tmp_path / "lanzhou.new.bundle.json")
    before = held(jinan, "lanzhou")
    assert before[:2] == (old, (1, old_bytes))

    # Without --confirm: both fingerprints and the peer named, exit 2, nothing changed.
    code, out, err = run(capsys, "peer", "repin", "--home", str(jinan), str(bundle))
    assert code == 2
    assert "lanzhou" in out and old in out and new in out
    assert err.startswith("error: no --confirm: nothing changed") and new in err
    assert held(jinan, "lanzhou") == before

    # A wrong fingerprint (the old one): refused the same way.
    argv = ["peer", "repin", "--home", str(jinan), str(bundle), "--confirm"]
    code, out, err = run(capsys, *argv, old)
    assert code == 2
    assert old in out and new in out
    assert f"--confirm {old} does not match" in err
    assert held(jinan, "lanzhou") == before

    # The new fingerprint: re-pinned, the held chain restarts from the new v1, and the
    # enrollment generation moves (a running node reacts to it).
    code, out, err = run(capsys, *argv, new)
    assert code == 0, err
    assert f"re-pinned lanzhou: root v1 SHA-256 {new}" in out
    sha, root, generation = held(jinan, "lanzhou")
    assert (sha, root) == (new, (1, new_bytes))
    assert generation > before[2]

    # Again: the same root is already pinned.
    code, _, err = run(capsys, *argv, new)
    assert code == 5 and "already pins this root v1" in err


def test_repin_refuses_an_unknown_peer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jinan = make_home(tmp_path, "jinan", "370100")
    lanzhou = make_home(tmp_path, "lanzhou", "620100")
    make_root(lanzhou)
    bundle = export(capsys, lanzhou, tmp_path / "lanzhou.bundle.json")
    code, _, err = run(capsys, "peer", "repin", "--home", str(jinan), str(bundle))
    assert code == 5 and "no enrolled peer named lanzhou" in err


def test_status_shows_root_versions_and_warns_before_own_root_expires(
    pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    jinan, _ = pair
    make_root(jinan, days=10)
    _, out, _ = run(capsys, "status", "--home", str(jinan), "--timeout", "0.5")
    assert "warning: this node's root v1 expires on" in out and "(in 9 days)" in out
    assert "roots of trust" in out
    assert "jinan (own) │ v1" in out and "lanzhou │ v1" in out

    rows = dict(root_expiries(load_home(jinan), {}, now=now() + dt.timedelta(days=11)))
    own = rows[None]
    assert own is not None and own.state == "expired"
    assert "this node's root v1 expired on" in own.describe()


def test_status_without_roots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jinan = make_home(tmp_path, "jinan", "370100")
    _, out, _ = run(capsys, "status", "--home", str(jinan), "--timeout", "0.5")
    assert "no root (keys root-init)" in out and "root v" not in out


def test_prune_deletes_only_retired_feed_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = make_home(tmp_path, "jinan", "370100")
    original = home / "keys" / "feed.key"
    hour_ago = time.time() - 3600  # root v1 lists feed.key from its file time, in seconds
    os.utime(original, (hour_ago, hour_ago))
    holders = make_root(home)
    # Root times are whole seconds: rotate a minute apart, in the past.
    first = rotate_key(
        home,
        role=FEED,
        now=now() - dt.timedelta(minutes=2),
        overlap=dt.timedelta(0),
        holder_keys=holders,
    ).new_key_path
    second = rotate_key(
        home,
        role=FEED,
        now=now() - dt.timedelta(minutes=1),
        overlap=dt.timedelta(0),
        holder_keys=holders,
    ).new_key_path
    assert first is not None and second is not None
    assert set(feed_key_files(home)) == {original, first, second}

    # Within the default overlap (24 h) nothing is retired yet.
    code, out, _ = run(capsys, "keys", "prune", "--home", str(home))
    assert code == 0 and "no retired private keys" in out

    # Without --yes: listed, nothing deleted.
    argv = ["keys", "prune", "--home", str(home), "--overlap-hours", "0"]
    code, out, err = run(capsys, *argv)
    assert code == 2 and "nothing deleted" in err
    assert f"would delete {first}" in out
    assert str(second) not in out and str(original) not in out
    assert set(feed_key_files(home)) == {original, first, second}

    # With --yes: only the retired rotated key goes; keys/feed.key and the signing key stay.
    code, out, err = run(capsys, *argv, "--yes")
    assert code == 0, err
    assert f"deleting {first}" in out
    assert set(feed_key_files(home)) == {original, second}
    code, out, _ = run(capsys, *argv, "--yes")
    assert code == 0 and "no retired private keys" in out
