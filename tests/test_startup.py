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
from hypothesis import given
from hypothesis import strategies as st
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


# --- commands that open a home -------------------------------------------------------------
# `lists` needs SQLAlchemy, the models and the home's certificates; it reads a database already
# at the newest migration without Alembic, and needs neither grpc, TUF, asyncpg (a SQLite
# home), SQLAlchemy's PostgreSQL dialect nor libsodium (rbcl: loading a key is not using it).
NOT_FOR_LISTS = ("grpc", "tuf", "securesystemslib", "alembic", "asyncpg", "rbcl")


def test_lists_on_a_current_database_skips_alembic_grpc_and_tuf(tmp_path: Path) -> None:
    from node.home import init_home

    home = tmp_path / "jinan"
    init_home(home, name="jinan", region="370100", listen="127.0.0.1:0")
    argv = [CREDITNODE, "lists", "--home", str(home)]
    first, out = imported_by(argv)  # creates the database: migrations run
    assert "alembic" in first and "lists held by creditnode://creditnode/jinan: 0 of 0" in out
    modules, again = imported_by(argv)
    assert again == out  # the same command, the same answer
    assert "sqlalchemy" in modules and "node.storage.models" in modules
    loaded = sorted(m for m in modules if m.split(".")[0] in NOT_FOR_LISTS)
    assert loaded == []
    assert "sqlalchemy.dialects.postgresql" not in modules
    peers, _ = imported_by([CREDITNODE, "peer", "list", "--home", str(home)])
    assert sorted(m for m in peers if m.split(".")[0] in NOT_FOR_LISTS) == []


def test_the_heads_read_from_the_scripts_are_alembics() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from node.storage._store import MIGRATIONS, migration_heads

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert migration_heads() == frozenset(ScriptDirectory.from_config(cfg).get_heads())


def _script(rev: str, down: str | None) -> str:
    down_text = "None" if down is None else f'"{down}"'
    return f'"""m"""\n\nrevision = "{rev}"\ndown_revision = {down_text}\nbranch_labels = None\n'


@given(st.lists(st.integers(0, 9999), min_size=1, max_size=30, unique=True), st.randoms())
def test_script_heads_of_a_chain_is_its_last(revs: list[int], rnd: Any) -> None:
    from node.storage._store import script_heads

    names = [f"{r:04d}" for r in revs]
    scripts = [_script(n, names[i - 1] if i else None) for i, n in enumerate(names)]
    rnd.shuffle(scripts)
    assert script_heads(scripts) == frozenset({names[-1]})
    # A script off the first is a second head (unless the first is also the last).
    branched = script_heads([*scripts, _script("x1", names[0])])
    assert branched == frozenset({"x1"} if len(names) == 1 else {"x1", names[-1]})


@pytest.mark.parametrize(
    "odd",
    [
        'revision: str = "0002"\ndown_revision = "0001"\n',  # annotated: not our plain form
        'revision = "0002"\ndown_revision = ("0001", "0003")\n',  # a merge
        'revision = "0002"\ndown_revision = "0001"\ndepends_on = "0003"\n',
        'revision = "0002"\ndown_revision = "0001"\nbranch_labels = ("b",)\n',
        'revision = "0002"\ndown_revision = "0009"\n',  # names a script that is not there
        'revision = "0001"\ndown_revision = None\n',  # the same revision twice
        "no revision here\n",
    ],
)
def test_script_heads_leaves_anything_else_to_alembic(odd: str) -> None:
    from node.storage._store import script_heads

    assert script_heads([_script("0001", None), odd]) is None


def test_a_pseudonym_key_is_a_scalar_of_the_oprf_group() -> None:
    from node.identity import oprf, pseudonym_key

    assert pseudonym_key.SCALAR_BYTES == oprf.SCALAR_BYTES


def _listed_codes() -> list[str]:
    from importlib import resources

    codes, top = [], ""
    text = resources.files("stdnum").joinpath("cn/loc.dat").read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if not line[0].isspace():
            top = line.split()[0]
            continue
        for span in line.split()[0].split(","):
            low, _, high = span.partition("-")
            codes += [top + low, top + (high or low)]
    return codes


def _whole_db_lookup(code: str) -> Any:
    """lookup_region as it was: the whole database parsed."""
    from node import regions

    parts = regions._db().info(code)
    if len(parts) != 2 or "county" not in parts[1][1]:
        return None
    province, _ = regions._split(parts[0][1].get("province", ""))
    name, current = regions._split(parts[1][1]["county"])
    return regions.Region(code=code, name=name, province=province, current=current)


def test_a_province_s_part_of_the_region_database_answers_as_the_whole() -> None:
    from node.regions import _blocks, lookup_region

    assert _blocks() is not None  # the fast path is the one taken
    codes = _listed_codes()
    assert len(codes) > 5000
    assert [c for c in codes if lookup_region(c) != _whole_db_lookup(c)] == []


@given(st.from_regex(r"\d{6}", fullmatch=True))
def test_any_six_digits_look_up_as_in_the_whole_region_database(code: str) -> None:
    from node.regions import lookup_region

    assert lookup_region(code) == _whole_db_lookup(code)


async def test_a_database_behind_the_scripts_is_still_upgraded(tmp_path: Path) -> None:
    """The head check only skips Alembic: a database a migration behind is brought to head."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    from node.storage import Store
    from node.storage._store import MIGRATIONS, migration_heads

    heads = migration_heads()
    assert heads is not None and len(heads) == 1
    (head,) = heads
    path = tmp_path / "node.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head-1")
    with engine.connect() as conn:
        behind = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    assert behind != head
    store = await Store.open(f"sqlite:///{path}")
    try:
        async with store.engine.connect() as conn:
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
            assert rows.scalar_one() == head
    finally:
        await store.close()
