"""What every command module shares: the consoles, the ``--home`` option and running async work."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from node.logs import configure_logging

T = TypeVar("T")

out = Console()
err = Console(stderr=True)

HomeOpt = Annotated[Path, typer.Option("--home", help="Node home directory.")]


def run_coro(coro: Coroutine[Any, Any, T]) -> T:
    """Run one command's async work to completion (commands themselves are sync)."""
    return asyncio.run(coro)


def quiet_logs() -> None:
    """Operator commands print tables; only warnings and errors go to stderr as JSON."""
    configure_logging("warning")
