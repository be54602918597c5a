"""Rich tables for operators: peers as one node sees them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from rich.table import Table

from node.api import pb
from node.regions import lookup_region
from node.storage.models import PeerRecord

_STYLE = {"up": "green", "unreachable": "red", "refused": "yellow", "unknown": "dim"}
_PB_STATE = {
    pb.PEER_STATE_UP: "up",
    pb.PEER_STATE_UNREACHABLE: "unreachable",
    pb.PEER_STATE_REFUSED: "refused",
    pb.PEER_STATE_UNSPECIFIED: "unknown",
}


def region_label(code: str) -> str:
    region = lookup_region(code)
    return f"{code} {region.name}" if region else code


def ago(when: dt.datetime | None, now: dt.datetime | None = None) -> str:
    if when is None:
        return "never"
    seconds = ((now or dt.datetime.now(dt.UTC)) - when).total_seconds()
    if seconds < 60:
        return f"{max(seconds, 0):.1f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    return when.strftime("%Y-%m-%d %H:%M:%SZ")


def peer_rows_from_records(rows: Iterable[PeerRecord]) -> list[tuple[str, str, str, str, str, str]]:
    return [
        (
            r.name,
            region_label(r.region),
            r.endpoint,
            r.state,
            ago(r.last_seen),
            r.last_error
            or (f"{r.software_version} / {r.protocol_version}" if r.software_version else ""),
        )
        for r in rows
    ]


def peer_rows_from_wire(
    peers: Iterable[pb.PeerStatus],
) -> list[tuple[str, str, str, str, str, str]]:
    out = []
    for p in peers:
        seen = p.last_seen.ToDatetime(tzinfo=dt.UTC) if p.HasField("last_seen") else None
        detail = p.last_error or (
            f"{p.software_version} / {p.protocol_version}" if p.software_version else ""
        )
        out.append(
            (
                p.name,
                region_label(p.region_code),
                p.endpoint,
                _PB_STATE.get(p.state, "unknown"),
                ago(seen),
                detail,
            )
        )
    return out


def peer_table(title: str, rows: list[tuple[str, str, str, str, str, str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("peer", "region", "endpoint", "state", "last seen", "detail"):
        table.add_column(col, no_wrap=col != "detail")
    for name, region, endpoint, state, seen, detail in rows:
        table.add_row(name, region, endpoint, f"[{_STYLE.get(state, '')}]{state}[/]", seen, detail)
    if not rows:
        table.add_row("(no peers enrolled)", "", "", "", "", "")
    return table
