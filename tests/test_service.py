"""The node as a systemd service (issue 16, deliverable 7): sd_notify readiness, reload on
SIGHUP, the unit, the install script and the runtime-only lock."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path
from types import ModuleType

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from node import sdnotify
from node.logs import configure_logging
from node.runtime import Node
from tests.conftest import FederationFactory
from tests.feedutil import adds, wait_mirrored
from tests.helpers import get_info
from tests.test_border import AGREEMENT, restart_with_agreement
from tests.test_layering import sources

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


# -- sd_notify ---------------------------------------------------------------------------


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket in the abstract namespace, named in NOTIFY_SOCKET as systemd does."""
    name = f"creditnode-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        yield sock
    finally:
        sock.close()


async def _received(sock: socket.socket) -> str:
    data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 4096), 20)
    return data.decode("utf-8")


def test_notify_sends_one_datagram_to_a_path_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert sdnotify.notify(sdnotify.READY, status="serving on \x1b[31mred\nSTOPPING=1")
        got = sock.recv(4096).decode()
    # The status is one line of inert text: it cannot add a field of its own.
    assert got == "READY=1\nSTATUS=serving on ?[31mred?STOPPING=1\n"


def test_notify_outside_systemd_or_to_nothing_is_harmless(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not sdnotify.notify(sdnotify.READY)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert not sdnotify.notify(sdnotify.READY)  # logged, not raised
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/path")
    assert not sdnotify.notify(sdnotify.READY)


@given(st.text(min_size=1))
def test_notify_address_forms(value: str) -> None:
    where = sdnotify.address(value)
    if value.startswith("@") and len(value) > 1:
        assert where == "\0" + value[1:]
    elif value.startswith("/"):
        assert where == value
    else:
        assert where is None


@given(st.text())
def test_a_status_never_adds_a_line(status: str) -> None:
    lines = sdnotify.message(sdnotify.READY, status=status).decode().split("\n")
    assert lines[0] == "READY=1" and lines[-1] == ""
    assert len(lines) == (3 if status else 2)
    if status:
        assert lines[1].startswith("STATUS=")
        assert len(lines[1]) <= len("STATUS=") + sdnotify.STATUS_MAX


def _same_size_and_time(path: Path, text: str) -> None:
    """Replace *path*'s content in place, keeping its size and modification time: only an
    explicit reload can notice."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


async def test_serve_notifies_systemd_reloads_on_sighup_and_stops_in_a_second(
    federation: FederationFactory, notify_socket: socket.socket
) -> None:
    fed = await federation(2)
    jinan = await restart_with_agreement(fed, AGREEMENT)
    lanzhou = fed["lanzhou"]
    agreement = jinan.home.paths.root / "agreements" / "lanzhou.toml"
    decision = jinan.border.decision("lanzhou", None)
    assert decision is not None and decision.agreement_version == 2
    await jinan.publisher.append(adds(2))
    await jinan.publisher.sign_checkpoint()
    await wait_mirrored(lanzhou, jinan, 2)  # lanzhou's follower is attached to jinan

    serving = asyncio.create_task(jinan.serve_until_signal())
    try:
        ready = await _received(notify_socket)
        assert ready == f"READY=1\nSTATUS=serving on {jinan.endpoint}\n"

        # Version 3, written so that the once-a-second check cannot see the change.
        _same_size_and_time(agreement, AGREEMENT.replace("version = 2", "version = 3"))
        jinan.border.refresh(force=True)
        assert jinan.border.decision("lanzhou", None).agreement_version == 2  # type: ignore[union-attr]

        # Calls keep coming while the node reloads: none fails.
        async def calls() -> int:
            done = 0
            for _ in range(30):
                info = await get_info(jinan, lanzhou.home.tls)
                assert info.node.name == "jinan"
                done += 1
                await asyncio.sleep(0.01)
            return done

        calling = asyncio.create_task(calls())
        await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGHUP)
        reloading = await _received(notify_socket)
        assert re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=\d+\n", reloading)
        assert await _received(notify_socket) == ready
        assert await calling == 30
        decision = jinan.border.decision("lanzhou", None)
        assert decision is not None and decision.agreement_version == 3

        # The follower stayed attached through the reload: it takes up what comes next.
        await jinan.publisher.append(adds(1, 10))
        await jinan.publisher.sign_checkpoint()
        await wait_mirrored(lanzhou, jinan, 3)

        began = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
        assert await _received(notify_socket) == "STOPPING=1\n"
        await asyncio.wait_for(serving, 20)
        took = time.monotonic() - began
    finally:
        if not serving.done():
            serving.cancel()
    assert took < 2.0, f"SIGTERM to stopped took {took:.2f} s with a follower attached"


async def test_reload_keeps_serving_when_an_agreement_breaks(
    federation: FederationFactory,
) -> None:
    """A broken agreement on reload fails closed (nothing personal), the node keeps serving."""
    fed = await federation(2, subscribe=False)
    jinan: Node = await restart_with_agreement(fed, AGREEMENT)
    (jinan.home.paths.root / "agreements" / "lanzhou.toml").write_text("id = [\n")
    await jinan.reload()
    assert jinan.border.decision("lanzhou", None) is None
    assert jinan.border.feed_fields("lanzhou") == frozenset()
    assert (await get_info(jinan, fed["lanzhou"].home.tls)).node.name == "jinan"


def test_the_log_file_is_reopened_after_logrotate_moves_it(tmp_path: Path) -> None:
    log_file = tmp_path / "node.log"
    logger = structlog.get_logger("creditnode.test")
    try:
        configure_logging("info", log_file)
        logger.info("before rotation")
        log_file.rename(tmp_path / "node.log.1")  # what logrotate does (no copytruncate)
        logger.info("after rotation")
    finally:
        configure_logging("info")  # back to the session's handler, closing the file
    assert "before rotation" in (tmp_path / "node.log.1").read_text()
    assert "after rotation" not in (tmp_path / "node.log.1").read_text()
    assert "after rotation" in log_file.read_text()


# -- the unit and the install script -----------------------------------------------------


def _unit() -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in (DEPLOY / "creditnode.service").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            keys.setdefault(key, []).append(value)
    return keys


def test_the_unit_is_a_notify_service_with_its_state_directory_and_reload() -> None:
    unit = _unit()
    assert unit["Type"] == ["notify"]
    assert unit["StateDirectory"] == ["creditnode"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["User"] == ["creditnode"]
    assert unit["ExecStart"][0].endswith("creditnode serve --home /var/lib/creditnode")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # verify also checks that ExecStart exists: a stand-in for the installed program.
    program = tmp_path / "creditnode"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    text = (DEPLOY / "creditnode.service").read_text()
    unit = tmp_path / "creditnode.service"
    unit.write_text(text.replace("/opt/creditnode/.venv/bin/creditnode", str(program)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_the_install_script_parses() -> None:
    subprocess.run(["bash", "-n", str(DEPLOY / "install.sh")], check=True, timeout=30)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", str(DEPLOY / "install.sh")], check=True, timeout=60)


# -- the runtime-only lock ---------------------------------------------------------------


@functools.cache
def _lock_module() -> ModuleType:
    """deploy/runtime-lock.py, a script rather than a package module."""
    spec = importlib.util.spec_from_file_location("runtime_lock", DEPLOY / "runtime-lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def _pins(path: Path) -> dict[str, str]:
    lock = _lock_module()
    pins = {}
    for line in path.read_text().splitlines():
        if m := lock.PIN.match(line):
            pins[lock.canonical(m.group(1))] = m.group(2)
    return pins


DEV_TOOLS = {"pytest", "mypy", "ruff", "grpcio-tools", "buf-bin", "hypothesis", "setuptools"}


def test_the_runtime_lock_is_current_a_subset_and_holds_no_dev_tool() -> None:
    lock = _lock_module()
    expected = lock.runtime_lock(
        (ROOT / "requirements.lock").read_text(), (ROOT / "pyproject.toml").read_text()
    )
    assert (ROOT / "requirements-runtime.lock").read_text() == expected, (
        "run python deploy/runtime-lock.py"
    )
    runtime, full = _pins(ROOT / "requirements-runtime.lock"), _pins(ROOT / "requirements.lock")
    assert runtime.items() <= full.items()  # same packages at the same versions
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev = {lock.requirement_name(r) for r in project["optional-dependencies"]["dev"]}
    assert dev, "the dev extra is empty"
    assert not (dev | DEV_TOOLS) & runtime.keys()
    assert {lock.requirement_name(r) for r in project["dependencies"]} <= runtime.keys()
    # Only needed by dev tools: dropped too.
    assert {"pluggy", "iniconfig", "mypy-extensions", "sortedcontainers"}.isdisjoint(runtime)


# Imported only by `python -m node.native.build` (run by `make venv`): without it a production
# install keeps the pure cores, so it is not a runtime dependency.
BUILD_TIME_ONLY = {"mypyc"}


def test_every_library_the_node_imports_is_in_the_runtime_lock() -> None:
    """Static: each third-party top-level module imported by node/, keys/ or adapters/ comes
    from a distribution the runtime lock pins (a missed runtime dependency would only show
    on a production install)."""
    import ast

    lock = _lock_module()
    runtime = _pins(ROOT / "requirements-runtime.lock").keys()
    owners = packages_distributions()
    local = {"node", "keys", "adapters"}
    missing: dict[str, set[str]] = {}
    for path in sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        tops = {
            alias.name.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.Import)
            for alias in n.names
        } | {
            (n.module or "").split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and not n.level
        }
        for top in tops - local - set(sys.stdlib_module_names) - {""} - BUILD_TIME_ONLY:
            dists = {lock.canonical(d) for d in owners.get(top, [])}
            if not dists & runtime:
                missing.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    assert not missing, f"imported but not in requirements-runtime.lock: {missing}"
