"""Rich tables for operators: peers as one node sees them; and the one JSON writer of
``--format json``."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from node.api import pb
from node.cli.console import data_text

if TYPE_CHECKING:
    from node.storage.models import PeerRecord

# Characters JSON may carry raw but a terminal acts on: DEL and C1 controls (0x9b is CSI), line
# separators and bidi overrides. They can only sit inside strings, so escaping them keeps the
# document valid and the same value for a parser.
_TERMINAL_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_text(obj: Any, *, indent: int | None = None) -> str:
    """*obj* as JSON: UTF-8 text (not \\u escapes) with sorted keys; every control, bidi or
    terminal-active character escaped, so piping it to a terminal shows data as text."""
    text = json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=indent)
    return _TERMINAL_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def emit_json(obj: Any) -> None:
    """Write one JSON document (indented) to standard output."""
    sys.stdout.write(json_text(obj, indent=2) + "\n")
    sys.stdout.flush()


def emit_json_lines(items: Iterable[Any]) -> int:
    """Write each item as one line of JSON as it comes (nothing buffered); return how many."""
    n = 0
    for item in items:
        sys.stdout.write(json_text(item) + "\n")
        n += 1
    sys.stdout.flush()
    return n


def emit_json_line(item: Any) -> None:
    """Write one JSON line (for writers that produce items asynchronously)."""
    sys.stdout.write(json_text(item) + "\n")


_STYLE = {"up": "green", "unreachable": "red", "refused": "yellow", "unknown": "dim"}
_PB_STATE = {
    pb.PEER_STATE_UP: "up",
    pb.PEER_STATE_UNREACHABLE: "unreachable",
    pb.PEER_STATE_REFUSED: "refused",
    pb.PEER_STATE_UNSPECIFIED: "unknown",
}


def region_label(code: str) -> str:
    from node.regions import lookup_region

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
        table.add_row(
            data_text(name), region, data_text(endpoint), Text(state, style=_STYLE.get(state, "")),
            seen, data_text(detail),
        )  # fmt: skip
    if not rows:
        table.add_row("(no peers enrolled)", "", "", "", "", "")
    return table
