"""Calendar dates as the alliance counts them (pure): Asia/Shanghai, whatever the host's zone.

Disclosure periods, expiry and removal dates are all Shanghai calendar dates. An entry whose
disclosure end is D is published through D and is expired from D + 1, 00:00 Shanghai time.

    >>> import datetime as dt
    >>> shanghai_today(dt.datetime(2026, 11, 30, 16, 30, tzinfo=dt.UTC)).isoformat()
    '2026-12-01'
    >>> is_expired("2026-11-30", dt.date(2026, 12, 1)), is_expired("", dt.date(2026, 12, 1))
    (True, False)
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def shanghai_now(now: dt.datetime | None = None) -> dt.datetime:
    """*now* (default: the current instant) in Shanghai time."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(SHANGHAI)


def shanghai_today(now: dt.datetime | None = None) -> dt.date:
    """Today's date in Shanghai."""
    return shanghai_now(now).date()


def next_midnight(now: dt.datetime | None = None) -> dt.datetime:
    """The next 00:00 in Shanghai after *now* (an aware datetime)."""
    local = shanghai_now(now)
    tomorrow = local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time(0, 0), tzinfo=SHANGHAI)


def is_expired(disclosure_end: str, today: dt.date) -> bool:
    """True once *today* is past *disclosure_end* (YYYY-MM-DD; empty means no end)."""
    return bool(disclosure_end) and disclosure_end < today.isoformat()
