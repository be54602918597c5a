"""What a running node leaves in its home for `status`: where it listens (``run/node.json``,
written at start, removed at stop) and when each peer last called it (``run/inbound.json``).

`status` runs in another process: it checks ``serving`` by dialling the bound port on the
local interface (never the advertised name, which may resolve elsewhere), and shows inbound
contact apart from reachability, which only this node's own outbound probes measure.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from node.config import parse_hostport

RUN_DIR = "run"
RUN_FILE = "node.json"
INBOUND_FILE = "inbound.json"
MAX_FILE_BYTES = 64 * 1024  # both files are small; a bigger one is not ours
MAX_PEERS = 1000


@dataclass(frozen=True)
class RunInfo:
    """The running node's bound listener, as it wrote it at start."""

    pid: int
    port: int
    listen: str  # the listen setting, as configured
    started_at: str  # ISO 8601, UTC

    def local_endpoint(self) -> str:
        """Where to dial the listener from this host: loopback for a wildcard bind."""
        host, _ = parse_hostport(self.listen)
        if host in ("", "0.0.0.0"):  # noqa: S104 - a wildcard bind is dialled on loopback
            host = "127.0.0.1"
        elif host in ("::", "[::]"):
            host = "[::1]"
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.port}"


def _write(path: Path, data: object) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def _read(path: Path) -> object:
    """The file's JSON, or None if absent, too big or not JSON (then it is not trusted)."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError:
        return None
    if len(raw) > MAX_FILE_BYTES:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def write_run_info(root: Path, info: RunInfo) -> None:
    _write(root / RUN_DIR / RUN_FILE, info.__dict__)


def remove_run_info(root: Path) -> None:
    (root / RUN_DIR / RUN_FILE).unlink(missing_ok=True)


def read_run_info(root: Path) -> RunInfo | None:
    """The running node's listener, or None (not running, or a file this node did not write)."""
    data = _read(root / RUN_DIR / RUN_FILE)
    if not isinstance(data, dict):
        return None
    pid, port, listen, started = (data.get(k) for k in ("pid", "port", "listen", "started_at"))
    if not (isinstance(pid, int) and isinstance(port, int) and 0 < port < 65536):
        return None
    if not (isinstance(listen, str) and isinstance(started, str)):
        return None
    if len(listen) > 300 or len(started) > 40:
        return None
    try:
        parse_hostport(listen)
    except ValueError:
        return None
    return RunInfo(pid, port, listen, started)


def process_alive(pid: int) -> bool:
    """Whether a process *pid* exists (a run file left by a killed node names a dead one)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


class InboundContacts:
    """When each peer last called this node, kept in memory and written through to the home
    (the caller throttles how often)."""

    def __init__(self, root: Path) -> None:
        self._path = root / RUN_DIR / INBOUND_FILE
        self._seen = read_inbound(root)

    def called(self, peer: str, when: dt.datetime | None = None) -> None:
        when = when or dt.datetime.now(dt.UTC)
        self._seen[peer] = when
        if len(self._seen) > MAX_PEERS:  # only enrolled peers call; keep it bounded anyway
            oldest = min(self._seen, key=lambda p: self._seen[p])
            del self._seen[oldest]
        with contextlib.suppress(OSError):  # status loses one line; the node keeps serving
            _write(self._path, {p: t.isoformat() for p, t in self._seen.items()})


def read_inbound(root: Path) -> dict[str, dt.datetime]:
    """Peer name → when it last called this node (what the file holds that parses)."""
    data = _read(root / RUN_DIR / INBOUND_FILE)
    found: dict[str, dt.datetime] = {}
    if not isinstance(data, dict):
        return found
    for peer, when in list(data.items())[:MAX_PEERS]:
        if not (isinstance(peer, str) and isinstance(when, str) and len(peer) <= 63):
            continue
        try:
            t = dt.datetime.fromisoformat(when[:40])
        except ValueError:
            continue
        found[peer] = t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)
    return found
