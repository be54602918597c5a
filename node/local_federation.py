"""N nodes of one federation in this process on 127.0.0.1:0, enrolled with each other.

Used by ``creditnode demo`` and by the tests' multi-node fixture::

    cities = [("jinan", "370100"), ("lanzhou", "620100")]
    async with LocalFederation(Path("/tmp/fed"), cities) as fed:
        print(fed["jinan"].endpoint)
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from keys import FederationCA
from node.home import HomePaths, init_home, load_home, set_setting
from node.peers.enrollment import enroll, export_bundle
from node.runtime import Node


def recorded_port(advertise: str) -> int | None:
    """The loopback port a node advertised on its last start, if no one listens there now."""
    host, _, port = advertise.rpartition(":")
    if host != "127.0.0.1" or not (port.isascii() and port.isdigit()) or port.startswith("0"):
        return None
    if not 0 < int(port) < 65536:
        return None
    with socket.socket() as s:
        # As the server will bind it: a port left in TIME_WAIT by the last run is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError:
            return None
    return int(port)


class LocalFederation:
    def __init__(
        self,
        base: Path,
        cities: Sequence[tuple[str, str]],
        *,
        federation: str = "yellow-river",
        heartbeat_seconds: float = 1.0,
        database_url: Callable[[str], str | None] = lambda _name: None,
        enroll: bool = True,
        heartbeat: bool = True,
        subscribe: bool = True,
        officers: bool = False,
        console: bool = False,
    ) -> None:
        self.base = base
        self.cities = list(cities)
        self.federation = federation
        self.heartbeat_seconds = heartbeat_seconds
        self.database_url = database_url
        self.enroll_all = enroll
        self.run_heartbeat = heartbeat
        self.subscribe = subscribe
        self.officers = officers  # each node also serves an officer listener on 127.0.0.1:0
        self.console = console  # each node also serves the console on 127.0.0.1:0 (issue 18)
        self.nodes: dict[str, Node] = {}

    @property
    def ca_dir(self) -> Path:
        return self.base / "ca"

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    async def start_node(self, name: str, region: str) -> Node:
        """Create (or reuse) the home for *name* and start it; enrollment is separate."""
        root = self.base / name
        if not HomePaths(root).config.exists():
            init_home(
                root,
                name=name,
                region=region,
                ca_dir=self.ca_dir,
                listen="127.0.0.1:0",
            )
        else:
            # A restart: the port it had, if still free, so that its partners' enrollment of
            # it stays true from the first call (otherwise a new one, re-enrolled below).
            port = recorded_port(load_home(root).settings.advertise)
            set_setting(root, "listen", f"127.0.0.1:{port or 0}")
        set_setting(root, "heartbeat_seconds", self.heartbeat_seconds)
        if self.officers:
            set_setting(root, "officer_listen", "127.0.0.1:0")
        if self.console:
            set_setting(root, "console_listen", "127.0.0.1:0")
        # Several nodes on one machine: each its own metrics port (the default is one port).
        set_setting(root, "metrics_listen", "127.0.0.1:0")
        node = await Node.open(root, database_url=self.database_url(name))
        await node.start(heartbeat=False, subscribe=self.subscribe)
        set_setting(root, "advertise", node.endpoint)
        self.nodes[name] = node
        return node

    async def enroll_pairwise(self) -> None:
        bundles = [export_bundle(load_home(n.home.paths.root)) for n in self.nodes.values()]
        # Every enrollment is stored first and the nodes take them up together: a follower
        # started at once would dial partners that have not enrolled its node yet.
        for node in self.nodes.values():
            for bundle in bundles:
                if bundle.name != node.name:
                    await enroll(node.home, node.store, bundle)
        await asyncio.gather(*(n.directory.refresh() for n in self.nodes.values()))

    async def __aenter__(self) -> LocalFederation:
        if not (self.ca_dir / "ca.key").exists():
            FederationCA.create(self.federation).save(self.ca_dir)
        try:
            for name, region in self.cities:
                await self.start_node(name, region)
            if self.enroll_all:
                await self.enroll_pairwise()
                await asyncio.gather(*(n.heartbeat.beat_once() for n in self.nodes.values()))
            if self.run_heartbeat:
                for node in self.nodes.values():
                    node.heartbeat.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self, grace: float = 1.0) -> None:
        await asyncio.gather(*(n.stop(grace) for n in self.nodes.values()), return_exceptions=True)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
