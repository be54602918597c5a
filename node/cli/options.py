"""What every command module shares: the consoles, the ``--home`` option and running async work."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from node.errors import InputError
from node.identity.validate import PERSONAL_KINDS, classify
from node.logs import configure_logging

T = TypeVar("T")

out = Console()
err = Console(stderr=True)

HomeOpt = Annotated[Path, typer.Option("--home", help="Node home directory.")]

# A resident ID is never an argument: argv lands in shell history, `ps` and audit logs.
PERSON_ID_FROM_STDIN = "-"
PERSON_ID_HINT = (
    "give --person-id - and type or pipe the ID: an ID on the command line lands in shell "
    "history and ps"
)


def person_id_opt(what: str) -> Any:
    """The ``--person-id`` option; *what* says what is done with the ID."""
    return typer.Option(
        "--person-id",
        metavar="-",
        help=f"Resident ID, {what}: give '-' and type it (not echoed) or pipe it on standard "
        "input; never on the command line.",
    )


def refuse_personal_code(option: str, value: str | None, *, hint: str) -> None:
    """Refuse a value given for an organisation's code (*option*) that reads as a person's ID,
    whole or damaged (exit 2, the value not repeated, not even masked): it is on the command
    line already, and must not travel further (a query would send it to a peer)."""
    if not value:
        return
    check = classify(value)
    if check.kind in PERSONAL_KINDS or check.display() != check.input:
        raise InputError(f"{option}: reads as a person's ID, not an organisation's code; {hint}")


def read_person_id(value: str | None) -> str | None:
    """The resident ID ``--person-id`` stands for: None without the option; with ``-`` one
    line of standard input, or a prompt without echo when standard input is a terminal.

    Any other value is refused without being repeated (exit 2): the ID is already in the
    shell's history and the process list, and must not reach a log or a screen as well.
    """
    if value is None:
        return None
    if value != PERSON_ID_FROM_STDIN:
        raise InputError(f"--person-id does not take the ID itself; {PERSON_ID_HINT}")
    stdin = sys.stdin
    try:
        if stdin is not None and stdin.isatty():
            text = getpass.getpass("resident ID (not echoed): ")
        else:
            text = stdin.readline() if stdin is not None else ""
    except EOFError:
        text = ""
    except UnicodeDecodeError:
        raise InputError("--person-id -: standard input is not text") from None
    text = text.strip()
    if not text:
        raise InputError("--person-id -: no ID on standard input (one line expected)")
    return text


def run_coro(coro: Coroutine[Any, Any, T]) -> T:
    """Run one command's async work to completion (commands themselves are sync)."""
    return asyncio.run(coro)


def quiet_logs() -> None:
    """Operator commands print tables; only warnings and errors go to stderr as JSON."""
    configure_logging("warning")
