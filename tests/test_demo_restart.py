"""`creditnode demo --dir DIR` a second time restarts the kept federation (issue 16), and no
failure prints an empty `error: ` line."""

from __future__ import annotations

import importlib
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.cli import main
from node.local_federation import recorded_port

CLI = [sys.executable, "-m", "node.cli"]
# The module (the package's `app` attribute is the Typer application).
cli_app = importlib.import_module("node.cli.app")


def run_demo(directory: Path) -> str:
    proc = subprocess.run(
        [*CLI, "demo", "--dir", str(directory), "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return proc.stdout


def endpoints(out: str) -> dict[str, str]:
    return dict(re.findall(r"(jinan|lanzhou|taiyuan) \((127\.0\.0\.1:\d+)\) sees", out))


@pytest.mark.timeout(600)
def test_demo_dir_a_second_time_restarts_the_federation(tmp_path: Path) -> None:
    first = run_demo(tmp_path / "demo")
    assert "restarting the federation" not in first
    second = run_demo(tmp_path / "demo")
    assert "restarting the federation kept there" in second
    # The same homes on the same ports (free again): partners' enrollment holds as it was.
    assert endpoints(second) == endpoints(first) and len(endpoints(first)) == 3
    assert "every city holds every list, verified" in second
    assert second.count(" up ") >= 6  # every node sees both others up
    assert "the removal reached lanzhou in" in second
    assert "federation stopped cleanly" in second


def test_recorded_port_only_when_free_on_loopback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert recorded_port(f"127.0.0.1:{port}") is None
    assert recorded_port(f"127.0.0.1:{port}") == port
    for advertised in ("", "jinan.example.gov.cn:7443", "127.0.0.1:0", "127.0.0.1:99999",
                       "127.0.0.1:x"):  # fmt: skip
        assert recorded_port(advertised) is None


@given(st.text(max_size=40))
def test_recorded_port_takes_any_text(advertised: str) -> None:
    port = recorded_port(advertised)
    assert port is None or (0 < port < 65536 and advertised == f"127.0.0.1:{port}")


@pytest.mark.parametrize("exc", [TimeoutError(), OSError(), ConnectionError("")])
def test_an_exception_without_a_message_still_says_what_failed(
    exc: Exception, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the second demo run printed before: `error: ` and nothing after it."""

    async def fails(*_args: object) -> None:
        raise exc

    monkeypatch.setattr("node.cli.demo.run_demo", fails)  # imported when the command runs
    assert main(["demo", "--seconds", "1"]) == 3
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0] == f"error: {type(exc).__name__} (no detail given; see the logs)"


def test_an_empty_message_is_never_printed_bare(capsys: pytest.CaptureFixture[str]) -> None:
    cli_app._fail("  ")
    assert capsys.readouterr().err.strip() == ("error: failed, with no detail given (see the logs)")
