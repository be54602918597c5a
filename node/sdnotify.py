"""Telling systemd how the service is doing: the ``sd_notify`` protocol (``Type=notify``).

The protocol is one datagram of ``KEY=VALUE`` lines sent to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a path, or an abstract name written with a leading ``@``); see
sd_notify(3). It is implemented here by hand rather than through a library: the
python-systemd bindings need libsystemd headers and a C build at install, the small PyPI
clients are unmaintained, and the whole protocol is a dozen lines — one less dependency in a
service that holds personal data. Outside systemd (no ``$NOTIFY_SOCKET``) every call is a
no-op, and a failure to notify never stops the node: it is logged once per message.
"""

from __future__ import annotations

import os
import socket
import time

import structlog

log = structlog.get_logger("creditnode.sdnotify")

READY = "READY=1"
STOPPING = "STOPPING=1"
RELOADING = "RELOADING=1"
STATUS_MAX = 200  # characters of a STATUS= line; systemctl shows it on one line


def address(value: str) -> str | None:
    """The socket address *value* ($NOTIFY_SOCKET) names, or None if it names none this
    node can use: ``@name`` is the abstract ``\\0name``, an absolute path is itself; a
    relative path or a ``vsock:`` address (a VM's host) is not supported."""
    if len(value) > 1 and value[0] == "@":
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def message(*fields: str, status: str = "") -> bytes:
    """The datagram for *fields* (``READY=1``…) and an optional human STATUS= line, made
    safe: a status is one line of printable text, bounded (it comes from settings)."""
    lines = list(fields)
    if status:
        clean = "".join(c if c.isprintable() else "?" for c in status)[:STATUS_MAX]
        lines.append(f"STATUS={clean}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def reloading() -> str:
    """``RELOADING=1`` with the monotonic time systemd (Type=notify-reload) expects beside it."""
    return f"{RELOADING}\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


def notify(*fields: str, status: str = "") -> bool:
    """Send *fields* to systemd; True if a datagram was sent. Never raises, never blocks:
    systemd reads these at once, and a full socket drops the message rather than the node."""
    target = os.environ.get("NOTIFY_SOCKET", "")
    if not target:
        return False
    where = address(target)
    if where is None:
        log.warning("NOTIFY_SOCKET not usable: not an absolute path or @abstract name")
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)
            sock.sendto(message(*fields, status=status), where)
    except OSError as exc:
        log.warning("systemd not notified", state=fields[0] if fields else "", error=str(exc))
        return False
    return True
