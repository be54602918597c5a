"""`creditnode demo`: a Yellow River alliance of three cities on loopback, in one process."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from node.local_federation import LocalFederation
from node.logs import configure_logging
from node.runtime import Node
from node.views import peer_rows_from_records, peer_table

CITIES = (("jinan", "370100"), ("lanzhou", "620100"), ("taiyuan", "140100"))


async def views(nodes: list[Node]) -> Group:
    tables = []
    for node in nodes:
        rows = await node.directory.repository.list()
        tables.append(
            peer_table(f"{node.name} ({node.endpoint}) sees", peer_rows_from_records(rows))
        )
    return Group(*tables)


async def run_demo(directory: Path | None, seconds: float | None, console: Console) -> None:
    base = directory or Path(tempfile.mkdtemp(prefix="creditnode-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    configure_logging("info", base / "demo.log")
    console.print(
        f"[bold]Yellow River credit alliance[/]: three nodes on loopback, homes in {base}"
    )
    console.print(f"JSON logs: {base / 'demo.log'}", style="dim")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    deadline = None if seconds is None else time.monotonic() + seconds
    hint = Text(
        "Ctrl-C stops the federation" if seconds is None else f"stopping after {seconds:g}s",
        style="dim",
    )
    try:
        async with LocalFederation(base, CITIES, heartbeat_seconds=1.0) as fed:
            nodes = list(fed.nodes.values())
            with Live(
                Group(await views(nodes), hint),
                console=console,
                auto_refresh=False,
                transient=False,
            ) as live:
                while not stop.is_set():
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=1.0)
                    live.update(Group(await views(nodes), hint), refresh=True)
            console.print("\nstopping: health NOT_SERVING, draining calls…")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    console.print("federation stopped cleanly")
    if directory is None:
        shutil.rmtree(base, ignore_errors=True)
    else:
        console.print(f"homes kept in {base}; `creditnode demo --dir {base}` starts them again")
