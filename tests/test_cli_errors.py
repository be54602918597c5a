"""Issue 16, user mistakes: each is one ``error:`` line naming what is wrong and where, a
non-zero exit and no traceback; ``--version``, ``-h`` and shell completion work."""

from __future__ import annotations

import asyncio
import gc
import os
import re
import shutil
import socket
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st

from node import __version__
from node.cli import app, main
from node.cli.options import MAX_ROWS, MAX_SECONDS, parse_count, parse_seconds, run_coro
from node.config import load_settings
from node.errors import ConfigError
from node.runtime import Node

CREDITNODE = Path(sys.executable).with_name("creditnode")
# What gRPC's C core prints itself: a severity letter, MMDD and a time (E1130 13:10:45.72 ...,
# or E0000 00:00:... before its logging is initialised).
RAW_GRPC_LINE = re.compile(r"^[EWID]\d{4} \d\d:\d\d:\d\d", re.MULTILINE)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("error: "), err
    return lines[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _subprocess_env() -> dict[str, str]:
    """The environment of a real `creditnode` run. Importing node.cli here set GRPC_VERBOSITY
    in this process; the child must set it itself, so it is removed."""
    env = dict(os.environ)
    env.pop("GRPC_VERBOSITY", None)
    env["CREDITNODE_METRICS_LISTEN"] = ""
    return env


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initialised home for the whole module (tests that damage it take a copy)."""
    path = tmp_path_factory.mktemp("cli_errors") / "jinan"
    assert main(["init", "--home", str(path), "--name", "jinan", "--region", "370100"]) == 0
    return path


@pytest.fixture
def copy(home: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(home, target)
    return target


# --- numeric options --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "option", "why"),
    [
        (["lists", "--limit", "99999999999999999999"], "--limit", f"from 0 to {MAX_ROWS}"),
        (["lists", "--limit", "-1"], "--limit", "from 0"),
        (["lists", "--limit", "ten"], "--limit", "not a whole number"),
        (["lists", "--offset", "1e3"], "--offset", "not a whole number"),
        (["status", "--timeout", "-1"], "--timeout", "more than 0"),
        (["status", "--timeout", "nan"], "--timeout", "finite"),
        (["status", "--timeout", "inf"], "--timeout", "finite"),
        (["status", "--timeout", "0"], "--timeout", "more than 0"),
        (["sync", "--timeout", "1e9"], "--timeout", "at most 86400"),
        (["query", "p", "--purpose", "x", "--timeout", "-0.5"], "--timeout", "more than 0"),
        (["entity", "--timeout", "nan"], "--timeout", "finite"),
        (["audit", "show", "--limit", "1.5"], "--limit", "not a whole number"),
        (["audit", "reconcile", "--peer", "p", "--in-flight-seconds", "-1"], "--in-flight", "0"),
        (["import", "--max-removals", "-3"], "--max-removals", "from 0"),
        (["keys", "propose-root", "--days", "99999999"], "--days", "from 0 to 3650"),
        (["keys", "rotate", "--role", "feed", "--overlap-hours", "nan"], "--overlap-hours", "0"),
        (["keys", "rotate", "--role", "transport", "--cert-days", "826"], "--cert-days", "825"),
        (["keys", "prune", "--overlap-hours", "-1"], "--overlap-hours", "at least 0"),
        (["demo", "--seconds", "-5"], "--seconds", "more than 0"),
    ],
)
def test_bad_numbers_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], option: str, why: str
) -> None:
    if argv[0] != "demo":
        argv = [*argv, "--home", str(tmp_path / "none")]
    rc, _, err = run(capsys, *argv)
    line = one_line_error(err)
    assert rc == 2, err
    assert option in line and why in line, line
    assert not (tmp_path / "none").exists()  # refused before any work


def _options(command: Any, path: list[str]) -> Iterator[tuple[str, Any]]:
    for name, sub in (getattr(command, "commands", None) or {}).items():
        yield from _options(sub, [*path, name])
    for param in command.params:
        yield " ".join([*path, *param.opts]), param


def test_every_numeric_option_is_bounded() -> None:
    """Walks the whole command tree: an int or float option has our parser, or Typer's min
    and max (then NaN fails the bounds)."""
    seen = []
    for where, param in _options(typer.main.get_command(app), ["creditnode"]):
        desc = getattr(param, "type_descriptor", None)
        annotation = str(getattr(desc, "annotation", ""))
        if not re.search(r"\b(int|float)\b", annotation):
            continue
        info = desc.parameter_info  # type: ignore[union-attr]
        bounded = info.parser is not None or (info.min is not None and info.max is not None)
        assert bounded, f"{where} ({annotation}) is not bounded"
        seen.append(where)
    assert "creditnode lists --limit" in seen and "creditnode status --timeout" in seen


@given(st.one_of(st.text(max_size=40), st.floats().map(str), st.integers().map(str)))
def test_seconds_parser_never_crashes(text: str) -> None:
    try:
        value = parse_seconds(text)
    except typer.BadParameter:
        return
    assert 0 < value <= MAX_SECONDS


@given(st.one_of(st.text(max_size=40), st.integers().map(str), st.floats().map(str)))
def test_count_parser_never_crashes(text: str) -> None:
    try:
        value = parse_count(text, minimum=1, maximum=500)
    except typer.BadParameter:
        return
    assert isinstance(value, int) and 1 <= value <= 500


# --- values the user types --------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["nonsense", "host:", ":7443", "host:0", "host:99999",
                                      "a b:7443", "-x:7443", "[::1:7443"])  # fmt: skip
def test_peer_export_refuses_a_bad_endpoint(
    capsys: pytest.CaptureFixture[str], home: Path, endpoint: str
) -> None:
    rc, out, err = run(capsys, "peer", "export", "--home", str(home), "--endpoint", endpoint)
    assert rc == 2 and out == ""
    assert "--endpoint must be HOST:PORT" in one_line_error(err)


@pytest.mark.parametrize("endpoint", ["jinan.example.cn:7443", "127.0.0.1:7443", "[::1]:7443"])
def test_peer_export_takes_a_good_endpoint(
    capsys: pytest.CaptureFixture[str], home: Path, endpoint: str
) -> None:
    rc, out, _ = run(capsys, "peer", "export", "--home", str(home), "--endpoint", endpoint)
    assert rc == 0 and f'"endpoint": "{endpoint}"' in out


@pytest.mark.parametrize(
    ("option", "value", "why"),
    [
        ("--uscc", "garbage", "USCC must be 18 characters"),
        ("--uscc", "91350100M00010OY43", "position 15"),
        ("--org-code", "xx", "organisation code must be 9 characters"),
        ("--reg-no", "1", "registration number must be 15 digits"),
        ("--tax-no", "x", "tax registration number must be 15 characters"),
    ],
)
def test_entity_refuses_an_invalid_code(
    capsys: pytest.CaptureFixture[str], home: Path, option: str, value: str, why: str
) -> None:
    rc, out, err = run(capsys, "entity", "--home", str(home), option, value)
    line = one_line_error(err)
    assert rc == 2 and out == ""
    assert line.startswith(f"error: {option}: ") and why in line


def test_entity_takes_a_valid_code(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    rc, out, _ = run(capsys, "entity", "--home", str(home), "--uscc", "91350100M000100Y43")
    assert rc == 0 and "nothing held" in out


# --- a damaged home ---------------------------------------------------------------------


def test_node_db_a_directory(capsys: pytest.CaptureFixture[str], copy: Path) -> None:
    for leftover in copy.glob("node.db*"):
        leftover.unlink()
    (copy / "node.db").mkdir()
    rc, _, err = run(capsys, "lists", "--home", str(copy))
    assert rc == 6
    assert f"{copy / 'node.db'}: not a database file" in one_line_error(err)


def test_node_db_not_a_database(capsys: pytest.CaptureFixture[str], copy: Path) -> None:
    for leftover in copy.glob("node.db*"):
        leftover.unlink()
    (copy / "node.db").write_text("these are not the pages you are looking for\n" * 100)
    rc, _, err = run(capsys, "lists", "--home", str(copy))
    assert rc == 6
    assert f"{copy / 'node.db'}: not an SQLite database" in one_line_error(err)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_node_db_unreadable(capsys: pytest.CaptureFixture[str], copy: Path) -> None:
    (copy / "node.db").chmod(0)
    rc, _, err = run(capsys, "lists", "--home", str(copy))
    assert rc == 6
    assert "cannot read the database" in one_line_error(err)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_garbage_tls_key_is_named(
    capsys: pytest.CaptureFixture[str], copy: Path, damage: str
) -> None:
    key = copy / "tls" / "node.key"
    data = key.read_bytes()
    # A key cut short by a bad copy (its PEM header intact), or a file of anything else.
    key.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"garbage\n")
    for argv in (["serve"], ["lists"], ["status"]):
        rc, _, err = run(capsys, *argv, "--home", str(copy))
        line = one_line_error(err)
        assert rc == 3, argv
        assert f"{key}: not a valid private key" in line
        assert "address" not in line


def test_tls_key_of_another_node_is_named(
    capsys: pytest.CaptureFixture[str], copy: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    assert main(["init", "--home", str(other), "--name", "jinan", "--region", "370100"]) == 0
    capsys.readouterr()
    shutil.copy(other / "tls" / "node.key", copy / "tls" / "node.key")
    rc, _, err = run(capsys, "serve", "--home", str(copy))
    assert rc == 3
    assert "node.key: does not match the certificate" in one_line_error(err)


# --- settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("CREDITNODE_HEARTBEAT_SECONDS", "-5", "greater than 0"),
        ("CREDITNODE_HEARTBEAT_SECONDS", "nan", "finite"),
        ("CREDITNODE_HEARTBEAT_SECONDS", "0", "greater than 0"),
        ("CREDITNODE_SHUTDOWN_GRACE_SECONDS", "inf", "finite"),
        ("CREDITNODE_ACTIONS_PULL_SECONDS", "1e12", "less than or equal"),
        ("CREDITNODE_PSEUDONYM_BURST", "99999999999999999999", "less than or equal"),
        ("CREDITNODE_VERIFY_INTERVAL_SECONDS", "-1", "greater than or equal to 0"),
        ("CREDITNODE_LOG_LEVEL", "loud", "Input should be"),
        ("CREDITNODE_RESPONSE_DAYS", "{not json", "not valid JSON"),
    ],
)
def test_bad_environment_value_names_the_variable(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    home: Path,
    variable: str,
    value: str,
    why: str,
) -> None:
    monkeypatch.setenv(variable, value)
    rc, _, err = run(capsys, "lists", "--home", str(home))
    line = one_line_error(err)
    assert rc == 3
    assert f"environment variable {variable}: " in line and why in line, line
    assert "input_value" not in line  # pydantic's dump of the value stays out


def test_bad_file_value_names_file_and_field(copy: Path) -> None:
    config = copy / "creditnode.toml"
    config.write_text(config.read_text() + "heartbeat_seconds = -5\n")
    with pytest.raises(ConfigError, match=r"creditnode\.toml: heartbeat_seconds: .*greater"):
        load_settings(copy)


# --- the command line itself ------------------------------------------------------------


def test_usage_mistakes_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "lists", "--bogus")
    line = one_line_error(err)
    assert rc == 2 and "creditnode lists: No such option: --bogus" in line
    rc, _, err = run(capsys, "init", "--name", "x")
    assert rc == 2 and "Missing option '--home'" in one_line_error(err)
    rc, _, err = run(capsys, "no-such-command")
    assert rc == 2 and "no-such-command" in one_line_error(err)


def test_version_real_entry_point() -> None:
    done = subprocess.run(
        [str(CREDITNODE), "--version"], capture_output=True, text=True, env=_subprocess_env()
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(f"creditnode {__version__}")
    assert done.stderr == ""


def test_h_is_help_on_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    def commands(command: Any, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in (getattr(command, "commands", None) or {}).items():
            yield from commands(sub, [*path, name])

    every = list(commands(typer.main.get_command(app), []))
    assert len(every) > 40
    for argv in every:
        rc, out, err = run(capsys, *argv, "-h")
        assert rc == 0, (argv, err)
        assert out.startswith("Usage: ") and "-h, --help" in out, argv


def test_shell_completion_is_on(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rc, out, _ = run(capsys, "-h")
    assert rc == 0 and "--install-completion" in out and "--show-completion" in out
    # --show-completion takes no value: it detects the shell it runs under, which is make's
    # /bin/sh under `make test`; the operator's bash is what matters here.
    monkeypatch.setattr(typer.completion, "_get_shell_name", lambda: "bash")
    rc, out, _ = run(capsys, "--show-completion")
    assert rc == 0 and "_creditnode_completion" in out and "complete " in out


# --- gRPC's own lines -------------------------------------------------------------------


def test_port_in_use_no_raw_grpc_line(tmp_path: Path, home: Path) -> None:
    """The real entry point, as an operator runs it: gRPC's C core would print its own line
    about the failed bind unless GRPC_VERBOSITY is set before grpc is imported."""
    copy = tmp_path / "h"
    shutil.copytree(home, copy)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**_subprocess_env(), "CREDITNODE_LISTEN": f"127.0.0.1:{port}"}
        done = subprocess.run(
            [str(CREDITNODE), "serve", "--home", str(copy)],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
    assert done.returncode == 3
    assert not RAW_GRPC_LINE.search(done.stderr), done.stderr
    line = one_line_error(done.stderr)
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in line


@pytest.fixture
def impostor_enrolled(tmp_path: Path) -> tuple[Path, Path, str]:
    """qingdao's home, and jinan's, which enrolled another "qingdao" (another CA) at
    qingdao's address."""
    endpoint = f"127.0.0.1:{_free_port()}"
    serving, impostor, asker = tmp_path / "qingdao", tmp_path / "impostor", tmp_path / "jinan"
    for path, name, region in ((serving, "qingdao", "370200"), (impostor, "qingdao", "370200"),
                               (asker, "jinan", "370100")):  # fmt: skip
        argv = ["init", "--home", str(path), "--name", name, "--region", region,
                "--listen", endpoint if path == serving else "127.0.0.1:0"]  # fmt: skip
        assert main(argv) == 0
    bundle = tmp_path / "impostor.json"
    assert main(["peer", "export", "--home", str(impostor), "--endpoint", endpoint,
                 "--out", str(bundle)]) == 0  # fmt: skip
    assert main(["peer", "add", "--home", str(asker), str(bundle)]) == 0
    return serving, asker, endpoint


async def test_tls_refusal_no_raw_grpc_line(impostor_enrolled: tuple[Path, Path, str]) -> None:
    """A peer whose certificate does not verify against the CA enrolled for it: our one line
    names the peer and its address; gRPC's handshake lines stay off stderr."""
    serving, asker, endpoint = impostor_enrolled
    node = await Node.open(serving)
    await node.start(heartbeat=False, subscribe=False, expire=False, verify=False)
    try:
        proc = await asyncio.create_subprocess_exec(
            str(CREDITNODE), "status", "--home", str(asker), "--peer", "qingdao",
            "--timeout", "10", env=_subprocess_env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, raw_err = await proc.communicate()
    finally:
        await node.stop(grace=0)
    err = raw_err.decode()
    assert proc.returncode == 4, err
    assert not RAW_GRPC_LINE.search(err), err
    line = one_line_error(err)
    assert f"qingdao at {endpoint}" in line and "does not verify" in line


def test_a_command_keeps_its_start_up_out_of_the_collector_and_gives_it_back() -> None:
    class Cycle:  # garbage only the cyclic collector frees
        def __init__(self) -> None:
            self.me = self

    ref = weakref.ref(Cycle())  # made before the command: frozen with its start-up

    async def during() -> tuple[int, bool]:
        gc.collect()
        return gc.get_freeze_count(), ref() is not None

    frozen, kept = run_coro(during())
    assert frozen > 0 and kept  # the collector's passes did not walk it
    assert gc.get_freeze_count() == 0  # a process running many commands frees as usual
    gc.collect()
    assert ref() is None
