"""Reading an auditor's filters: times (a naive one is Asia/Shanghai time, as the alliance
counts days), a time range, an officer and a subject as the log records them.

Shared by `creditnode audit` and the console's auditor pages; errors name the CLI option.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

from node.errors import InputError

if TYPE_CHECKING:
    from node.audit.entry import AuditEntry
    from node.home import Home

OFFICER_ID = re.compile(r"[0-9a-f]{32}")


def parse_time(text: str | None, option: str) -> dt.datetime | None:
    """An ISO date or date-time; a naive one is Shanghai time. InputError naming *option*."""
    from node.feeds.dates import SHANGHAI

    if text is None:
        return None
    try:
        when = (
            dt.datetime.combine(dt.date.fromisoformat(text), dt.time())
            if len(text) == 10
            else dt.datetime.fromisoformat(text)
        )
    except ValueError:
        raise InputError(f"{option}: not an ISO date or date-time (e.g. 2026-11-23)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=SHANGHAI)
    return when.astimezone(dt.UTC)


def time_range(start: str | None, end: str | None) -> tuple[dt.datetime, dt.datetime]:
    """``--from`` (required) and ``--to`` (default now), the one after the other."""
    t0 = parse_time(start, "--from")
    if t0 is None:
        raise InputError("--from: give the start of the range")
    t1 = parse_time(end, "--to") or dt.datetime.now(dt.UTC)
    if t1 <= t0:
        raise InputError("--to must be after --from")
    return t0, t1


def to_us(when: dt.datetime) -> int:
    """Microseconds since the Unix epoch, as entries and receipts carry times."""
    from node.audit.entry import EPOCH

    return (when - EPOCH) // dt.timedelta(microseconds=1)


def shanghai_time(e: AuditEntry) -> str:
    """An entry's time as `audit show` prints it (Shanghai, to the second)."""
    from node.feeds.dates import SHANGHAI

    return e.at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def officer_filter(home: Home, officer: str | None) -> str | None:
    """An officer of this node by name (keyed with the audit secret), or an id as shown."""
    from node.audit.entry import EntryError, officer_id
    from node.audit.log import load_secret

    if officer is None:
        return None
    if OFFICER_ID.fullmatch(officer):
        return officer  # an id as shown (a partner's officer, keyed at the partner)
    try:
        return officer_id(load_secret(home.paths.root), officer)
    except EntryError as exc:
        raise InputError(f"--officer: {exc}") from None


def subject_filter(home: Home, subject: str | None) -> str | None:
    """A USCC, or a subject commitment as recorded, as the log's subject column holds it."""
    from node.audit.entry import EntryError, check_uscc_or_commitment
    from node.audit.log import load_secret

    if subject is None:
        return None
    try:
        return check_uscc_or_commitment(load_secret(home.paths.root), subject)
    except EntryError as exc:
        raise InputError(f"--subject: {exc}") from None
