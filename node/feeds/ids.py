"""Entry ids an origin issues: RFC 9562 UUIDv7, as 32 lower-case hex digits (the form uuid4's
``.hex`` had). Time-ordered, so a batch of new entries lands on a few adjacent index pages of
``list_state`` instead of dirtying most of them (issue 17).

    >>> a, b = entry_id(at_ms=1_700_000_000_000), entry_id(at_ms=1_700_000_000_000)
    >>> len(a), a < b, a[12], int(a[16], 16) >> 2
    (32, True, '7', 2)
"""

from __future__ import annotations

import os
import threading
import time

_RAND_BITS = 74  # rand_a (12) + rand_b (62)
_lock = threading.Lock()
_last = (0, 0)  # (ms, 74-bit random part) of the newest id issued by this process


def uuid7_value(ms: int, rand: int) -> int:
    """The 128-bit UUIDv7 with Unix time *ms* and the 74 random bits *rand* (pure)."""
    if not 0 <= ms < 1 << 48 or not 0 <= rand < 1 << _RAND_BITS:
        raise ValueError("UUIDv7 time or random bits out of range")
    rand_a, rand_b = rand >> 62, rand & ((1 << 62) - 1)
    return (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b


def entry_id(*, at_ms: int | None = None) -> str:
    """A new UUIDv7 as 32 hex digits, strictly greater than every earlier one of this process
    (RFC 9562 §6.2 method 2: within one millisecond, or if the clock steps back, the random
    part of the previous id plus one; its overflow moves on to the next millisecond)."""
    global _last
    ms = time.time_ns() // 1_000_000 if at_ms is None else at_ms
    rand = int.from_bytes(os.urandom(10)) >> (80 - _RAND_BITS)
    with _lock:
        last_ms, last_rand = _last
        if ms <= last_ms:
            ms, rand = last_ms, last_rand + 1
            if rand >> _RAND_BITS:
                ms, rand = ms + 1, 0
        _last = (ms, rand)
    return f"{uuid7_value(ms, rand):032x}"
