"""Command start-up stays cheap (issue 16): `--version`, `--help`, every `<cmd> --help`, shell
completion and `identity check` run without importing grpc, SQLAlchemy, cryptography, TUF or
Alembic. Nothing here is timed (bench/startup.py measures): a heavy import creeping back into
the command tree fails these tests on any machine, however fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.core import TyperGroup
from typer.main import get_command

from node.actions.record import ACTIONS
from node.audit.entry import OUTCOMES
from node.cli import app, choices, main
from node.cli.app import branch
from node.feeds.classes import CLASSES
from node.feeds.importer import STATED_REASONS
from node.identity.codes import org_code_check_char, uscc_check_char
from node.keys.ceremony import DEFAULT_DAYS, ROTATABLE_ROLES
from node.keys.roles import ONLINE_ROLES
from node.objections.core import GROUNDS
from node.policy.agreement import PURPOSES

CREDITNODE = str(Path(sys.executable).with_name("creditnode"))
# Each costs from a tenth of a second (grpc) to most of one (SQLAlchemy with Alembic).
HEAVY = ("grpc", "sqlalchemy", "cryptography", "tuf", "securesystemslib", "alembic", "asyncpg")


def imported_by(argv: list[str], env: dict[str, str] | None = None) -> tuple[set[str], str]:
    """The modules a run of the installed `creditnode` script imports (from the interpreter's
    own -X importtime report), and its standard output."""
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {}), "PYTHONPROFILEIMPORTTIME": "1"},
        check=False,
    )
    modules = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            modules.add(line.rpartition("|")[2].strip())
    assert done.returncode == 0, done.stderr[-2000:]
    return modules, done.stdout


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


@pytest.mark.parametrize(
    ("argv", "shows"),
    [
        (["--version"], "creditnode 0.1.0"),
        (["--help"], "Usage: creditnode"),
        (["-h"], "Usage: creditnode"),
        (["identity", "check", "--help"], "Usage: creditnode identity check"),
        (["import", "--help"], "--removal-reason"),
        (["stats", "verify", "--help"], "Usage: creditnode stats verify"),
    ],
)
def test_the_command_tree_imports_nothing_heavy(argv: list[str], shows: str) -> None:
    modules, out = imported_by([CREDITNODE, *argv])
    assert shows in out
    assert "node.cli.app" in modules  # the report is real: it saw the CLI load
    assert heavy_in(modules) == []


def test_shell_completion_imports_nothing_heavy() -> None:
    modules, out = imported_by(
        [CREDITNODE],
        env={
            "_CREDITNODE_COMPLETE": "complete_bash",
            "COMP_WORDS": "creditnode keys rotate --ro",
            "COMP_CWORD": "3",
        },
    )
    assert out.split() == ["--role"]
    assert heavy_in(modules) == []


def test_identity_check_imports_nothing_heavy(tmp_path: Path) -> None:
    body = "91370100MA000001" + org_code_check_char("MA000001")
    codes = tmp_path / "codes.csv"
    codes.write_text(f"统一社会信用代码\n{body}{uscc_check_char(body)}\n", encoding="utf-8")
    modules, out = imported_by([CREDITNODE, "identity", "check", str(codes), "--format", "json"])
    assert json.loads(out)["valid"] == 1
    assert heavy_in(modules) == []


def test_every_help_page_is_cheap() -> None:
    """Every command and group answers -h without a heavy import (in one process, so a command
    module that imports something heavy at its top is caught whichever command it serves)."""
    script = textwrap.dedent(
        """
        import contextlib, io, json, sys
        from typer.main import get_command
        from node.cli import app, main

        paths = []
        def walk(cmd, path):
            paths.append(path)
            for name, sub in getattr(cmd, "commands", {}).items():
                walk(sub, [*path, name])
        walk(get_command(app), [])
        failed = []
        for path in paths:
            with contextlib.redirect_stdout(io.StringIO()) as shown:
                if main([*path, "-h"]) != 0 or "Usage:" not in shown.getvalue():
                    failed.append(path)
        print(json.dumps({"pages": len(paths), "failed": failed, "modules": sorted(sys.modules)}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    found: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    assert found["pages"] > 50 and found["failed"] == []
    assert heavy_in(set(found["modules"])) == []


def test_help_choices_match_their_sources() -> None:
    """The literals the help texts name (node.cli.choices) are the values commands accept."""
    assert tuple(CLASSES) == choices.RECORD_CLASSES
    assert choices.STATED_REASONS == STATED_REASONS
    assert choices.ACTIONS == ACTIONS
    assert choices.AUDIT_OUTCOMES == OUTCOMES
    assert tuple(GROUNDS) == choices.GROUNDS
    assert tuple(PURPOSES) == choices.PURPOSES
    assert choices.DEFAULT_DAYS == DEFAULT_DAYS
    assert choices.ROTATABLE_ROLES == ROTATABLE_ROLES
    assert choices.ONLINE_ROLES == ONLINE_ROLES


def test_wire_modules_load_on_first_use() -> None:
    """node.api imports a generated module when it is first named: messages without grpc."""
    script = (
        "import sys\n"
        "from node.api import feeds\n"
        "assert feeds.ListEntry.DESCRIPTOR.name == 'ListEntry'\n"
        "assert 'grpc' not in sys.modules\n"
        "from node.api import feeds_rpc\n"
        "assert 'grpc' in sys.modules and hasattr(feeds_rpc, 'FeedServiceStub')\n"
        "import node.api\n"
        "assert node.api.feeds is feeds\n"
        "try:\n"
        "    node.api.nothing\n"
        "except AttributeError as exc:\n"
        "    assert 'nothing' in str(exc)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_python_dash_m_still_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "node.cli", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stdout.startswith("creditnode 0.1.0")


def _described(command: Any) -> tuple[Any, ...]:
    params = [(p.name, tuple(p.opts), getattr(p, "help", None)) for p in command.params]
    subcommands = getattr(command, "commands", {})
    return (command.help, params, {n: _described(c) for n, c in subcommands.items()})


def test_a_branch_is_the_same_command_as_in_the_whole_tree() -> None:
    """main() builds only the branch a run invokes: each is the same as in the whole tree."""
    whole = get_command(app)
    assert isinstance(whole, TyperGroup)
    for name, command in whole.commands.items():
        cut = get_command(branch([name, "--home", "x"]))
        assert isinstance(cut, TyperGroup)
        assert list(cut.commands) == [name]
        assert _described(cut.commands[name]) == _described(command)
    # No arguments, a help before the command, or a name that is no command: the whole tree.
    for argv in ([], ["-h", "identity"], ["--help"], ["identiy", "check"]):
        assert branch(argv) is app
    cut = get_command(branch(["--version"]))
    assert isinstance(cut, TyperGroup) and cut.commands == {}


def test_the_listing_and_the_suggestions_still_see_every_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["-h", "identity"]) == 0
    listing = capsys.readouterr().out
    assert all(f" {name} " in listing for name in ("serve", "identity", "lists", "stats"))
    assert main(["identiy"]) == 2
    assert "identity" in capsys.readouterr().err
