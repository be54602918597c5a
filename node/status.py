"""`creditnode status`: this node from its home and its own server, or a peer over the wire."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from keys import NodeIdentity
from node.errors import InputError, PeerError
from node.home import Home, load_home
from node.peer_client import Probe, fetch_peers, probe
from node.storage import Store
from node.storage.peers import PeerRepository
from node.views import peer_rows_from_records, peer_rows_from_wire, peer_table, region_label


def _self_endpoint(home: Home) -> str | None:
    s = home.settings
    for addr in (s.advertise, s.listen):
        if addr and not addr.endswith(":0"):
            host, _, port = addr.rpartition(":")
            if host in ("0.0.0.0", "[::]"):  # noqa: S104 - a wildcard bind is dialled on loopback
                host = "127.0.0.1" if host == "0.0.0.0" else "[::1]"  # noqa: S104
            return f"{host}:{port}"
    return None


async def node_status(root: Path, console: Console, *, timeout: float) -> bool:
    """Print the node and its peers; True if the node's own server answered."""
    home = load_home(root)
    store = await Store.open(home.database_url)
    try:
        rows = await PeerRepository(store).list()
        journal = await store.journal_mode()
        backend = store.backend
    finally:
        await store.close()
    endpoint = _self_endpoint(home)
    result: Probe | None = None
    if endpoint is not None:
        result = await probe(home.tls, home.identity, endpoint, home.tls.ca_pem, timeout=timeout)
    table = Table(show_header=False, title=f"node {home.identity.uri}", title_justify="left")
    table.add_row("region", region_label(home.settings.region))
    table.add_row("listen", home.settings.listen)
    table.add_row("database", backend + (f" (journal {journal})" if journal else ""))
    if result is None:
        table.add_row("serving", "unknown (port 0 and no advertise address)")
    elif result.state == "up" and result.info is not None:
        table.add_row(
            "serving",
            f"[green]yes[/] at {endpoint}, {result.info.software_version} / "
            f"{result.info.protocol_version}, {result.latency_ms:.1f} ms",
        )
    else:
        table.add_row("serving", f"[red]no[/] ({result.error})")
    console.print(table)
    console.print(peer_table("peers (as last observed)", peer_rows_from_records(rows)))
    return result is not None and result.state == "up"


async def remote_status(root: Path, name: str, console: Console, *, timeout: float) -> None:
    """Call one enrolled peer live and print what it says about itself and its peers."""
    home = load_home(root)
    store = await Store.open(home.database_url)
    try:
        record = await PeerRepository(store).get(name)
    finally:
        await store.close()
    if record is None:
        raise InputError(f"no enrolled peer named {name!r} (see `creditnode peer list`)")
    ident = NodeIdentity(record.federation, record.name)
    ca = record.ca_certificate.encode()
    result = await probe(home.tls, ident, record.endpoint, ca, timeout=timeout)
    if result.state != "up" or result.info is None:
        raise PeerError(result.error)
    peers = await fetch_peers(home.tls, ident, record.endpoint, ca, timeout=timeout)
    info = result.info
    table = Table(show_header=False, title=f"peer {ident.uri} (live)", title_justify="left")
    table.add_row("region", region_label(info.region_code))
    table.add_row("endpoint", record.endpoint)
    table.add_row("versions", f"{info.software_version} / {info.protocol_version}")
    table.add_row("round trip", f"{result.latency_ms:.1f} ms")
    table.add_row("up since", info.started_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%SZ"))
    console.print(table)
    console.print(peer_table(f"{name}'s peers", peer_rows_from_wire(peers)))
