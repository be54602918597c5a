"""`creditnode status`: this node from its home and its own server, or a peer over the wire."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from keys import NodeIdentity
from node.cli.console import data_text
from node.cli.render import ago, emit_json, peer_rows_from_wire, peer_table, region_label
from node.errors import InputError, PeerError
from node.feeds.health import FORKED, LAGGING, OK, STALLED, TAMPERED
from node.home import load_home
from node.peers.certificates import WARN_DAYS
from node.peers.client import fetch_peers, probe

# Collected in node.status (the console shows it too); the `X as X` names stay importable here.
from node.status.collect import SCHEMA as SCHEMA
from node.status.collect import collect_status as collect_status
from node.status.collect import feed_rows as feed_rows
from node.status.collect import root_expiries as root_expiries
from node.storage import Store
from node.storage.peers import PeerRepository


async def node_status(
    root: Path,
    console: Console,
    *,
    timeout: float,
    fmt: str = "table",
    receipts: bool = False,
    leaf: int | None = None,
    html: Path | None = None,
) -> bool:
    """Print the node and its peers (a table, or JSON), or with *html* write the page of
    :mod:`node.status_page` there; True if the node's own listener answered."""
    if html is not None and fmt != "table":
        raise InputError("--html writes a page; it does not combine with --format json")
    data = await collect_status(root, timeout=timeout, receipts=receipts, leaf=leaf)
    if html is not None:
        await write_page(root, data, html)
        console.print(data_text(f"status page written to {html}"), soft_wrap=True)
    elif fmt == "json":
        emit_json(data)
    else:
        render_status(root, data, console)
    return bool(data["serving"]["state"] == "yes")


PAGE_HOURS = 24  # the history the page plots


async def write_page(root: Path, data: Mapping[str, Any], path: Path) -> None:
    """Render the status page with the last PAGE_HOURS of metrics history and write it
    (whole or not at all); a path that cannot be written is one error line."""
    from node.metrics.history import read_history  # lazy: prometheus-client and jinja2 are
    from node.status_page import render_page  # only paid for by --html

    home = load_home(root)
    end = dt.datetime.now(dt.UTC)
    start = end - dt.timedelta(hours=PAGE_HOURS)
    async with Store.opened(home.database_url) as store:
        history = await read_history(store, start)
    page = render_page(data, history, start=start, end=end)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {(exc.strerror or str(exc)).lower()}") from None


def _plain(value: object) -> Text:
    """A data value as one line of inert text: never markup, no control characters."""
    return data_text("" if value is None else value)


def render_status(root: Path, data: Mapping[str, Any], console: Console) -> None:
    node, serving = data["node"], data["serving"]
    table = Table(show_header=False, title=f"node {node['uri']}", title_justify="left")
    table.add_row("region", region_label(node["region"]))
    table.add_row("listen", _plain(node["listen"]))
    table.add_row(
        "database", node["database"] + (f" (journal {node['journal']})" if node["journal"] else "")
    )
    if serving["state"] == "yes":
        shown = Text("yes", style="green")
        shown.append_text(
            data_text(
                f" at {serving['endpoint']}, {serving['software_version']} / "
                f"{serving['protocol_version']}, {serving['latency_ms']:.1f} ms"
            )
        )
    else:
        shown = Text("no", style="red")
        shown.append_text(data_text(f" ({serving['detail']})"))
    table.add_row("serving", shown)
    console.print(table)
    for warning in data["warnings"]:
        console.print(Text("warning: ", style="bold red") + data_text(warning), soft_wrap=True)
    console.print(peer_status_table(data["peers"]))
    console.print(subscriber_table(data["subscribers"]))
    console.print(certificate_table(data["certificates"]))
    console.print(root_table(data["roots"]))
    console.print(feed_table(data["feeds"]))
    console.print(verification_table(data["verification"]))
    for r in data["verification"]:
        if r["findings"]:
            console.print(
                Text("stored data does not verify: ", style="bold red")
                + data_text(f"{r['findings'][0]} (see `creditnode verify --home {root}`)"),
                soft_wrap=True,
            )
    console.print(release_table(data["released"]))
    audit = data["audit"]
    if audit["size"] is not None:
        console.print(
            data_text(
                f"audit log: {audit['size']} entries, {audit['checkpoint_size']} under a signed "
                f"checkpoint (`creditnode audit show --home {root}`)"
            ),
            soft_wrap=True,
        )
    conflicts = data["identity_conflicts"]
    kinds = conflicts["by_kind"]
    console.print(
        Text(
            f"identity conflicts: {conflicts['total']}"
            + (
                f" ({', '.join(f'{k} {n}' for k, n in kinds.items())}; "
                f"see `creditnode identity conflicts --home {root}`)"
                if conflicts["total"]
                else ""
            )
        )
    )


_REACH_STYLE = {"up": "green", "unreachable": "red", "refused": "yellow", "unknown": "dim"}


def peer_status_table(peers: list[dict[str, Any]]) -> Table:
    table = Table(
        title="peers (reach: this node's own probes, outbound; calls from them apart)",
        title_justify="left",
    )
    for col in ("peer", "region", "endpoint", "reach", "last reached", "last called us", "detail"):
        table.add_column(col, no_wrap=col != "detail")
    for p in peers:
        detail = p["reach_error"] or (
            f"{p['software_version']} / {p['protocol_version']}" if p["software_version"] else ""
        )
        table.add_row(
            _plain(p["name"]),
            _plain(region_label(p["region"])),
            _plain(p["endpoint"]),
            data_text(p["reach"], style=_REACH_STYLE.get(p["reach"], "")),
            ago(_when(p["last_reached"])),
            ago(_when(p["last_called_us"])),
            _plain(detail),
        )
    if not peers:
        table.add_row("(no peers enrolled)", "", "", "", "", "", "")
    return table


def _when(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


_FEED_STYLE = {OK: "green", LAGGING: "yellow", STALLED: "yellow", FORKED: "red", TAMPERED: "red"}


def feed_table(feeds: list[dict[str, Any]]) -> Table:
    table = Table(title="feeds (own log first, then mirrors)", title_justify="left")
    for col in ("origin", "leaves", "checkpoint", "active entries", "state", "evidence"):
        table.add_column(col)
    for f in feeds:
        shown = Text(f["state"], style=_FEED_STYLE.get(f["state"], "red"))
        if f["reason"]:
            shown.append_text(data_text(f": {f['reason']}"))
        table.add_row(
            _plain(f"{f['origin']} (own)" if f["own"] else f["origin"]),
            str(f["leaves"])
            + (f" ({f['projection_lag']} to project)" if f.get("projection_lag") else ""),
            str(f["checkpoint_size"]),
            str(f["active_entries"]),
            shown,
            str(f["evidence"]),
        )
    if not feeds:
        table.add_row("(no feeds yet)", "", "", "", "", "")
    return table


def subscriber_table(subs: list[dict[str, Any]]) -> Table:
    table = Table(
        title="own feed at each peer (received: the peer's own receipts, with --receipts; "
        "has leaf: with --leaf N)",
        title_justify="left",
    )
    for col in ("peer", "own size", "last served", "received", "state", "has leaf"):
        table.add_column(col)
    for s in subs:
        ack = s["acknowledged"] if s["acknowledged"] is not None else (s["receipts_error"] or "-")
        covers = {True: "yes", False: "no", None: "-"}[s["covers_leaf"]]
        style = {"caught up": "green", "lagging": "yellow"}.get(s["state"], "dim")
        table.add_row(
            _plain(s["peer"]),
            str(s["own_size"]),
            ago(_when(s["last_served"])),
            _plain(ack),
            Text(s["state"], style=style),
            covers,
        )
    if not subs:
        table.add_row("(no peers enrolled)", "", "", "", "", "")
    return table


def release_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        title="personal data released (from the audit log; `creditnode audit show` for each entry)",
        title_justify="left",
    )
    for col in ("peer", "responses", "values", "last"):
        table.add_column(col)
    for r in rows:
        table.add_row(_plain(r["peer"]), str(r["responses"]), str(r["values"]), _plain(r["last"]))
    if not rows:
        table.add_row("(nothing released)", "", "", "")
    return table


def expiry_text(e: Mapping[str, Any]) -> Text:
    days = int(e["days_left"])
    if e["state"] == "ok":
        return Text("ok", style="green") + Text(f" ({days} days left)")
    if e["state"] == "expiring":
        return Text(f"expires in {days} days", style="yellow")
    return Text("expired", style="red") + Text(f" {-days} days ago")


def certificate_table(expiries: list[dict[str, Any]]) -> Table:
    table = Table(title=f"certificates (warned {WARN_DAYS} days ahead)", title_justify="left")
    for col in ("certificate", "valid until", "state"):
        table.add_column(col)
    for e in expiries:
        table.add_row(_plain(e["what"]), _plain(e["valid_until"]), expiry_text(e))
    return table


def root_table(roots: list[dict[str, Any]]) -> Table:
    table = Table(
        title=f"roots of trust (own warned {WARN_DAYS} days ahead; peers' as held)",
        title_justify="left",
    )
    for col in ("node", "version", "valid until", "state"):
        table.add_column(col)
    for r in roots:
        name = f"{r['node']} (own)" if r["own"] else r["node"]
        if r["what"] is None:
            missing = "no root (keys root-init)" if r["own"] else "no root pinned"
            table.add_row(_plain(name), "-", "-", missing)
            continue
        version = str(r["what"]).rsplit(" ", 1)[-1]
        table.add_row(_plain(name), _plain(version), _plain(r["valid_until"]), expiry_text(r))
    return table


def verification_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        title="stored data verification (serve re-checks it in the background)",
        title_justify="left",
    )
    for col in ("log", "last whole pass", "leaves verified", "in progress", "findings"):
        table.add_column(col)
    for r in rows:
        found = (
            Text(str(len(r["findings"])), style="red") + data_text(f", first: {r['findings'][0]}")
            if r["findings"]
            else Text("none", style="green")
        )
        table.add_row(
            _plain(r["log"]),
            _plain(r["verified_at"] or "never"),
            str(r["verified_size"]),
            str(r["position"] or ""),
            found,
        )
    if not rows:
        table.add_row("(no logs yet)", "", "", "", "")
    return table


async def remote_status(root: Path, name: str, console: Console, *, timeout: float) -> None:
    """Call one enrolled peer live and print what it says about itself and its peers."""
    home = load_home(root)
    async with Store.opened(home.database_url) as store:
        record = await PeerRepository(store).get(name)
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
    table.add_row("endpoint", data_text(record.endpoint))
    table.add_row("versions", data_text(f"{info.software_version} / {info.protocol_version}"))
    table.add_row("round trip", f"{result.latency_ms:.1f} ms")
    table.add_row("up since", info.started_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%SZ"))
    console.print(table)
    console.print(peer_table(f"{name}'s peers", peer_rows_from_wire(peers)))
