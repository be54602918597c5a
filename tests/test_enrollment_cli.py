"""Enrollment through the CLI: `peer remove` and `peer add` in one process reach `creditnode serve`
in another within a second (SQLite and PostgreSQL); `--replace` and fingerprints; certificate
expiry in `status`."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keys import (
    FederationCA,
    NodeIdentity,
    certificate_fingerprint,
    read_private_file,
    write_public_file,
)
from node.api import feeds, feeds_rpc, pb, rpc
from node.cli import main
from node.home import HomePaths, TlsMaterial, load_home
from node.peers.enrollment import feed_key_fingerprint
from node.peers.transport import channel_credentials, secure_channel
from tests.conftest import DbUrlFactory
from tests.test_cli import _free_port, one_line_error, run

CLI = [sys.executable, "-m", "node.cli"]
BOUND = 1.0


def _init(tmp_path: Path, name: str, region: str, *extra: str) -> Path:
    home = tmp_path / name
    argv = ["init", "--home", str(home), "--name", name, "--region", region, *extra]
    assert main(argv) == 0
    return home


def _bundle(home: Path, out: Path, *extra: str) -> Path:
    assert main(["peer", "export", "--home", str(home), "--out", str(out), *extra]) == 0
    return out


def _serve(home: Path) -> subprocess.Popen[str]:
    # A heartbeat far longer than the bounds measured: only the enrollment notification can
    # make them.
    env = {**os.environ, "CREDITNODE_HEARTBEAT_SECONDS": "120"}
    return subprocess.Popen(
        [*CLI, "serve", "--home", str(home)],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _channel(client: TlsMaterial, home: Path) -> grpc.aio.Channel:
    """A channel to the node at *home* (listening on loopback), with a subchannel of its own:
    no reconnect backoff left over from an earlier failed handshake."""
    server = load_home(home)
    return grpc.aio.secure_channel(
        server.settings.listen,
        channel_credentials(client, server.tls.ca_pem),
        [
            ("grpc.ssl_target_name_override", server.identity.dns_name),
            ("grpc.use_local_subchannel_pool", 1),
        ],
    )


async def _get_info(client: TlsMaterial, home: Path) -> pb.GetInfoResponse:
    async with _channel(client, home) as channel:
        return await rpc.NodeServiceStub(channel).GetInfo(pb.GetInfoRequest(), timeout=2)


async def _wait_serving(client: TlsMaterial, home: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            await _get_info(client, home)
            return
        except grpc.aio.AioRpcError:
            assert time.monotonic() < deadline, "node did not start serving"
            await asyncio.sleep(0.2)


async def test_cli_remove_and_add_reach_a_serving_node_in_another_process(
    tmp_path: Path, new_database: DbUrlFactory
) -> None:
    FederationCA.create("yellow-river").save(tmp_path / "ca")
    url = await new_database("jinan")
    database = ["--database", url] if url else []
    port = _free_port()
    ca = ["--ca", str(tmp_path / "ca")]
    jinan = await asyncio.to_thread(
        _init, tmp_path, "jinan", "370100", *ca, "--listen", f"127.0.0.1:{port}", *database
    )
    lanzhou = await asyncio.to_thread(
        _init, tmp_path, "lanzhou", "620100", *ca, "--listen", f"127.0.0.1:{_free_port()}"
    )
    bundle = await asyncio.to_thread(_bundle, lanzhou, tmp_path / "l.json")
    assert await asyncio.to_thread(main, ["peer", "add", "--home", str(jinan), str(bundle)]) == 0
    lanzhou_tls = load_home(lanzhou).tls
    jinan_home = load_home(jinan)

    proc = _serve(jinan)
    try:
        await _wait_serving(lanzhou_tls, jinan, proc)
        # lanzhou subscribes to jinan's feed; `peer remove` in this process cuts the stream.
        ended: list[float] = []
        status: list[grpc.StatusCode] = []
        got_checkpoint = asyncio.Event()

        async def subscribe() -> None:
            channel = secure_channel(
                lanzhou_tls, f"127.0.0.1:{port}", jinan_home.identity, jinan_home.tls.ca_pem
            )
            async with channel:
                call = feeds_rpc.FeedServiceStub(channel).Subscribe(feeds.SubscribeRequest())
                try:
                    async for msg in call:
                        if msg.HasField("checkpoint"):
                            got_checkpoint.set()
                except grpc.aio.AioRpcError as err:
                    status.append(err.code())
            ended.append(time.monotonic())

        reader = asyncio.create_task(subscribe())
        await asyncio.wait_for(got_checkpoint.wait(), 20)
        called = time.monotonic()
        rc = await asyncio.to_thread(main, ["peer", "remove", "--home", str(jinan), "lanzhou"])
        returned = time.monotonic()
        assert rc == 0
        await asyncio.wait_for(reader, 10)
        print(
            f"[{'postgresql' if url else 'sqlite'}] peer remove -> stream cut: "
            f"{ended[0] - returned:.3f}s after the command returned "
            f"({ended[0] - called:.3f}s after it started)"
        )
        assert status == [grpc.StatusCode.PERMISSION_DENIED]
        assert ended[0] - returned < BOUND
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _get_info(lanzhou_tls, jinan)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED

        # A partner with a CA of its own: refused at the handshake until `peer add`, then
        # admitted within a second, TLS layer included.
        zhengzhou = await asyncio.to_thread(
            _init, tmp_path, "zhengzhou", "410100", "--federation", "yellow-river"
        )
        zhengzhou_tls = load_home(zhengzhou).tls
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _get_info(zhengzhou_tls, jinan)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        bundle = await asyncio.to_thread(
            _bundle, zhengzhou, tmp_path / "z.json", "--endpoint", "127.0.0.1:9"
        )
        called = time.monotonic()
        rc = await asyncio.to_thread(main, ["peer", "add", "--home", str(jinan), str(bundle)])
        returned = time.monotonic()
        assert rc == 0
        while True:
            try:
                resp = await _get_info(zhengzhou_tls, jinan)
                break
            except grpc.aio.AioRpcError:
                assert time.monotonic() - returned < 10
                await asyncio.sleep(0.05)
        admitted = time.monotonic()
        print(
            f"[{'postgresql' if url else 'sqlite'}] peer add (own CA) -> admitted: "
            f"{admitted - returned:.3f}s after the command returned "
            f"({admitted - called:.3f}s after it started)"
        )
        assert resp.node.name == "jinan"
        assert admitted - returned < BOUND
    finally:
        proc.send_signal(signal.SIGTERM)
        outs = proc.communicate(timeout=30)
    assert proc.returncode == 0, outs
    events = [json.loads(line) for line in outs[1].splitlines() if line.startswith("{")]
    cut = [e for e in events if e["event"] == "calls cut"]
    assert cut and cut[0]["peer"] == "lanzhou"


def test_peer_add_shows_fingerprints_and_needs_replace_for_new_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    FederationCA.create("yellow-river").save(tmp_path / "ca")
    ca = ["--ca", str(tmp_path / "ca")]
    jinan = _init(tmp_path, "jinan", "370100", *ca)
    lanzhou = _init(tmp_path, "lanzhou", "620100", *ca)
    capsys.readouterr()
    old_ca = certificate_fingerprint(load_home(lanzhou).tls.ca_certificate)

    rc, out, err = run(capsys, "peer", "export", "--home", str(lanzhou))
    assert rc == 0 and json.loads(out)["name"] == "lanzhou"  # stdout stays the bundle
    assert f"CA fingerprint (SHA-256): {old_ca}" in err
    (tmp_path / "old.json").write_text(out)
    rc, out, _ = run(capsys, "peer", "add", "--home", str(jinan), str(tmp_path / "old.json"))
    assert rc == 0 and f"CA fingerprint (SHA-256): {old_ca}" in out

    # Lanzhou starts over with a CA (and feed key) of its own.
    renewed = tmp_path / "again"
    renewed.mkdir()
    lanzhou2 = _init(renewed, "lanzhou", "620100", "--federation", "yellow-river")
    new_ca = certificate_fingerprint(load_home(lanzhou2).tls.ca_certificate)
    old_key = feed_key_fingerprint(json.loads((tmp_path / "old.json").read_text())["feed_key"])
    new_key = feed_key_fingerprint(load_home(lanzhou2).signing_key.verifying_key.to_text())
    _bundle(lanzhou2, tmp_path / "new.json")
    capsys.readouterr()
    rc, _, err = run(capsys, "peer", "add", "--home", str(jinan), str(tmp_path / "new.json"))
    assert rc == 5
    line = one_line_error(err)
    for fingerprint in (old_ca, new_ca, old_key, new_key):
        assert fingerprint in line
    assert "--replace" in line
    # Refused means unchanged: the old bundle still matches what is enrolled.
    rc, _, _ = run(capsys, "peer", "add", "--home", str(jinan), str(tmp_path / "old.json"))
    assert rc == 0

    rc, out, _ = run(
        capsys, "peer", "add", "--home", str(jinan), str(tmp_path / "new.json"), "--replace"
    )
    assert rc == 0, out
    assert f"CA fingerprint (SHA-256): {new_ca}" in out
    assert f"CA replaced: SHA-256 {old_ca} -> {new_ca}" in out
    assert f"feed key replaced: SHA-256 {old_key} -> {new_key}" in out
    # The same bundle again changes no key: no --replace needed.
    rc, _, _ = run(capsys, "peer", "add", "--home", str(jinan), str(tmp_path / "new.json"))
    assert rc == 0


def _reissue(home: Path, ca_dir: Path, *, days: int) -> dt.datetime:
    """Give *home* a certificate from its federation CA valid for *days* days."""
    paths = HomePaths(home)
    key = serialization.load_pem_private_key(read_private_file(paths.tls_key), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    loaded = load_home(home)
    cert = FederationCA.load(ca_dir).issue_node_certificate(
        NodeIdentity(loaded.settings.federation, loaded.settings.name), key.public_key(), days=days
    )
    write_public_file(paths.tls_cert, cert.public_bytes(serialization.Encoding.PEM))
    return cert.not_valid_after_utc


def test_status_warns_30_days_before_a_certificate_expires(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    FederationCA.create("yellow-river").save(tmp_path / "ca")
    ca = ["--ca", str(tmp_path / "ca")]
    jinan = _init(tmp_path, "jinan", "370100", *ca)
    lanzhou = _init(tmp_path, "lanzhou", "620100", *ca)
    assert (
        main(["peer", "add", "--home", str(jinan), str(_bundle(lanzhou, tmp_path / "l.json"))]) == 0
    )
    capsys.readouterr()

    _, out, _ = run(capsys, "status", "--home", str(jinan), "--timeout", "0.5")
    assert "warning:" not in out  # fresh certificates: 825 days
    assert "this node's TLS certificate" in out and "days left" in out

    mine = _reissue(jinan, tmp_path / "ca", days=20)
    theirs = _reissue(lanzhou, tmp_path / "ca", days=5)
    assert (
        main(["peer", "add", "--home", str(jinan), str(_bundle(lanzhou, tmp_path / "l.json"))]) == 0
    )
    capsys.readouterr()
    _, out, _ = run(capsys, "status", "--home", str(jinan), "--timeout", "0.5")
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: this node's TLS certificate expires on {mine:%Y-%m-%d %H:%M} UTC (in 19 days)",
        f"warning: peer lanzhou's TLS certificate expires on {theirs:%Y-%m-%d %H:%M} UTC "
        "(in 4 days)",
    ]

    gone = _reissue(jinan, tmp_path / "ca", days=0)
    _, out, _ = run(capsys, "status", "--home", str(jinan), "--timeout", "0.5")
    assert (
        f"warning: this node's TLS certificate expired on {gone:%Y-%m-%d %H:%M} UTC (0 days ago)"
        in out
    )
