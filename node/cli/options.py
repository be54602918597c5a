"""What every command module shares: the consoles, the ``--home`` option and running async work."""

from __future__ import annotations

import getpass
import math
import sys
from collections.abc import Coroutine
from functools import partial
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from node.cli.console import DataConsole
from node.errors import InputError

T = TypeVar("T")

# No string is markup and no text reaches the terminal as a control sequence (node.cli.console).
out = DataConsole()
err = DataConsole(stderr=True)

HomeOpt = Annotated[Path, typer.Option("--home", help="Node home directory.")]

FORMATS = ("table", "json")


def check_format(value: str) -> str:
    """The ``--format`` callback: a bad value is one ``error:`` line, exit 2 (the value is not
    repeated: it is the user's, and may be anything)."""
    if value not in FORMATS:
        raise InputError("--format must be table or json")
    return value


# The one ``--format`` option of every command that shows data; the JSON schemas are in
# docs/json.md.
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        metavar="table|json",
        help="table (for people) or json (for scripts; schemas in docs/json.md).",
        callback=check_format,
    ),
]

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
    from node.identity.validate import PERSONAL_KINDS, classify

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
    import asyncio  # here, not at the top: --help and offline commands need no event loop
    import gc

    # What start-up built (modules, schemas, the CLI) lives as long as the process: kept out
    # of the collector's full passes, which otherwise walk it again and again while a sync or
    # an import allocates per entry (bench/sync.py, 300k entries on SQLite, alternating:
    # 14.3k and 14.7k/s without, 16.0k and 17.1k/s with). Undone after, so a process running
    # several commands (the tests) keeps nothing it would otherwise free.
    gc.freeze()
    try:
        return asyncio.run(coro)
    finally:
        gc.unfreeze()


def quiet_logs() -> None:
    """Operator commands print tables; only warnings and errors go to stderr as JSON."""
    from node.logs import configure_logging

    configure_logging("warning")


# Numeric options are bounded: a value past the bound is a typo or a unit slip, refused with
# one line (exit 2) before any work, never handed on to SQLite (an overflow traceback) or to
# asyncio (a negative or NaN wait that busy-loops or never ends).
MAX_SECONDS = 86_400.0  # a day: longer than any call, sync or wait a command makes
MAX_ROWS = 10_000_000  # more rows than any list or audit log a command shows


def parse_seconds(
    value: object, *, maximum: float = MAX_SECONDS, allow_zero: bool = False
) -> float:
    """A number of seconds (or hours): finite, more than 0 (or at least 0 with *allow_zero*)
    and at most *maximum*."""
    try:
        seconds = float(str(value).strip())
    except ValueError:
        raise typer.BadParameter("not a number") from None
    low = "at least 0" if allow_zero else "more than 0"
    above = seconds >= 0 if allow_zero else seconds > 0
    if not (math.isfinite(seconds) and above and seconds <= maximum):
        raise typer.BadParameter(f"must be a finite number, {low} and at most {maximum:g}")
    return seconds


def parse_count(value: object, *, minimum: int = 0, maximum: int = MAX_ROWS) -> int:
    """A whole number from *minimum* to *maximum*."""
    text = str(value).strip()
    digits = text[1:] if text[:1] in ("+", "-") else text
    # ASCII digits only: int() would also take "1_000", other scripts' digits, and choke on
    # 5000-digit strings.
    if not (digits.isascii() and digits.isdigit()):
        raise typer.BadParameter("not a whole number")
    if len(digits) > 18 or not minimum <= int(text) <= maximum:
        raise typer.BadParameter(f"must be from {minimum} to {maximum}")
    return int(text)


def seconds_opt(
    *decls: str,
    help: str,
    maximum: float = MAX_SECONDS,
    allow_zero: bool = False,
    metavar: str = "SECONDS",
) -> Any:
    """A ``typer.Option`` for a duration (see parse_seconds)."""
    parse = partial(parse_seconds, maximum=maximum, allow_zero=allow_zero)
    return typer.Option(*decls, help=help, metavar=metavar, parser=parse)


def count_opt(*decls: str, help: str, minimum: int = 0, maximum: int = MAX_ROWS) -> Any:
    """A ``typer.Option`` for a bounded whole number (see parse_count)."""
    return typer.Option(
        *decls,
        help=help,
        metavar="N",
        parser=partial(parse_count, minimum=minimum, maximum=maximum),
    )
