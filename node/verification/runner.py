"""Re-checking everything the node stores (I/O edge of :mod:`node.verification.check`):
every log in the database read in bounded chunks, its tree rebuilt against its stored hashes
and signed checkpoints, a feed's list state and openings against its leaves.

``creditnode verify`` runs one whole pass at full speed; ``serve`` runs passes in the
background at a share of the I/O (sleeping in proportion between chunks), remembering how far
it got in ``verification_progress`` so a restart resumes mid-pass. Findings are kept in
``verification_findings`` until a later whole pass over their log finds it clean, and the
log's state says ``tampered`` meanwhile.

Which keys a stored checkpoint may be signed by: for this node's own logs, any feed (or
audit) key it ever held or listed in a version of its own root; for a mirror, the peer's
enrolled feed key or any feed key a version of its root held here lists. (A checkpoint was
checked against the keys valid *when it arrived*; re-checking it later asks only that it be
signed by a key that was ever the origin's.) Cosigned checkpoints join here once witnessing
keeps them: :func:`cosigned_notes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from keys import VerifyingKey
from node.audit.log import audit_origin, verify_audit_log
from node.feeds import merkle, projection
from node.feeds.logstore import LOGS
from node.feeds.state import STATE
from node.feeds.verify import FeedError
from node.home import Home
from node.keys.roles import AUDIT, FEED, ed25519_public
from node.keys.signers import load_role_keys
from node.keys.store import RootStore
from node.keys.trusted import RootError, parse_root
from node.storage import Store
from node.storage.dialect import fetch_rows
from node.storage.models import VerificationFinding, VerificationProgress, utcnow
from node.storage.peers import PEER_ROOTS, PeerRepository
from node.verification.check import (
    CHECKPOINT_ROOT,
    COUNTERS,
    CURSOR,
    EXTRA,
    INDEX,
    LEAF,
    MISSING,
    NAMES,
    OPENING,
    PROJECTION,
    STATE_ORPHAN,
    STORED_HASH,
    TRUNCATED,
    Finding,
    OpeningRow,
    StateCheck,
    StateRow,
    TreeCheck,
    check_checkpoint,
)
from node.verification.counters import counter_diff
from node.verification.names import name_index_diff

log = structlog.get_logger("creditnode.verify")

PROGRESS = VerificationProgress.__table__  # type: ignore[attr-defined]
FINDINGS = VerificationFinding.__table__  # type: ignore[attr-defined]

CHUNK = 8192  # leaves per read: bounded memory whatever the log's size
LOOKUP = 500  # entry ids per IN (...) query
TAMPERED = "tampered"
VERIFY_PREFIX = "verify: "  # state_detail of a log marked by the verifier (cleared by it)

OWN, MIRROR, LOCAL = "own feed", "mirror", "local log"
LATEST = "logs checkpoint_note"
# Of findings at one index, the cause first: a cut log before the rows it left dangling.
_RANK = {
    MISSING: 0,
    TRUNCATED: 1,
    LEAF: 2,
    STORED_HASH: 3,
    CHECKPOINT_ROOT: 4,
}  # the newest checkpoint, kept on the log's row


@dataclass
class LogReport:
    """What one pass checked in one log, and what it found."""

    log_id: int
    label: str
    kind: str
    origin: str
    size: int = 0
    leaves: int = 0
    hashes: int = 0
    checkpoints: int = 0
    state_rows: int = 0
    openings: int = 0
    findings: list[Finding] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    seconds: float = 0.0
    complete: bool = True

    @property
    def first_bad_index(self) -> int | None:
        found = [f.index for f in self.findings if f.index is not None]
        return min(found) if found else None


@dataclass
class Report:
    logs: list[LogReport] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.logs for f in r.findings]

    @property
    def leaves(self) -> int:
        return sum(r.leaves for r in self.logs)


# --- keys ----------------------------------------------------------------------------------


def _named(names: Sequence[str], raws: set[bytes]) -> list[VerifyingKey]:
    return [
        VerifyingKey(n, Ed25519PublicKey.from_public_bytes(raw))
        for n in dict.fromkeys(names)
        for raw in sorted(raws)
    ]


def own_keys(home: Home, roles: Sequence[str], names: Sequence[str]) -> list[VerifyingKey]:
    """Every key of *roles* this node holds or any version of its own root lists, under each
    of *names* (a note's key name is part of what is signed)."""
    raws = {home.signing_key.verifying_key.raw}
    for role in roles:
        for key in load_role_keys(home.paths.root, role, home.signing_key.name).values():
            raws.add(key.verifying_key.raw)
    for parsed in RootStore(home.paths.root).history():
        for role in roles:
            for o in parsed.content.online_keys(role):
                raws.add(_raw(ed25519_public(o.key)))
    return _named(names, raws)


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


async def peer_keys(store: Store, peer: str, origin: str) -> list[VerifyingKey]:
    """The peer's enrolled feed key and every feed key a version of its root held here lists
    (empty if the peer is no longer enrolled: its checkpoints cannot be re-checked)."""
    record = await PeerRepository(store).get(peer)
    if record is None:
        return []
    raws = {VerifyingKey.from_text(record.feed_key).raw}
    async with store.engine.connect() as conn:
        datas = (
            await conn.execute(select(PEER_ROOTS.c.data).where(PEER_ROOTS.c.peer == peer))
        ).scalars()
        for data in datas:
            try:
                content = parse_root(bytes(data)).content
            except RootError:
                continue
            raws.update(_raw(ed25519_public(o.key)) for o in content.online_keys(FEED))
    return _named([origin], raws)


async def cosigned_notes(conn: AsyncConnection, log_id: int) -> list[tuple[int, bytes]]:
    """Checkpoints of this log kept with witnesses' cosignatures: (size, note). The seam for
    witnessing: until it keeps them, there are none beyond ``checkpoints``."""
    del conn, log_id
    return []


# --- one log ----------------------------------------------------------------------------


@dataclass
class LogTarget:
    log_id: int
    origin: str
    peer: str | None
    kind: str
    label: str
    size: int
    root: bytes
    checkpoint_size: int
    checkpoint_note: bytes
    keys: list[VerifyingKey]


def frontier_blob(f: merkle.Frontier) -> bytes:
    return b"".join(f.hashes)


def frontier_from(size: int, blob: bytes) -> merkle.Frontier | None:
    indexes = merkle.tree_hash_indexes(size)
    if len(blob) != merkle.HASH_SIZE * len(indexes):
        return None
    hashes = {i: blob[n * 32 : n * 32 + 32] for n, i in enumerate(indexes)}
    return merkle.Frontier.from_hashes(size, hashes)


@dataclass
class Chunk:
    """The rows of leaves [start, end) of one log, read in one go."""

    start: int
    end: int
    leaves: list[tuple[int, bytes]]
    hashes: list[tuple[int, bytes]]
    notes: list[tuple[int, bytes]]
    rows: list[StateRow]
    openings: list[OpeningRow]


async def read_chunk(store: Store, log_id: int, a: int, b: int, feed: bool) -> Chunk:
    """Every stored row that leaves [a, b) decide (rows come as plain tuples: ``.all()``
    skips the per-row iteration that would cost more than the database)."""
    lo, hi = merkle.stored_hash_index(0, a), merkle.stored_hash_index(0, b)
    async with store.engine.connect() as conn:
        leaves = await fetch_rows(conn, _LEAVES_SQL, (log_id, a, b))
        hashes = await fetch_rows(conn, _HASHES_SQL, (log_id, lo, hi))
        notes = [
            (int(n), bytes(d))
            for n, d in await fetch_rows(conn, _NOTES_SQL, (log_id, a if a == 0 else a + 1, b))
        ]
        notes += [(n, d) for n, d in await cosigned_notes(conn, log_id) if a < n <= b]
        rows: list[StateRow] = []
        openings: list[OpeningRow] = []
        if feed:
            # _make: tuple.__new__ straight from the driver's row, twice as fast as StateRow(*r)
            rows = list(map(StateRow._make, await fetch_rows(conn, _ROWS_SQL, (log_id, a, b))))
            openings = await fetch_rows(conn, _OPENINGS_SQL, (log_id, a, b))
    return Chunk(a, b, leaves, hashes, notes, rows, openings)


_ROW_COLUMNS = (
    "entry_id", "list_name", "list_type", "subject_type", "subject_name", "uscc", "status",
    "removal_reason", "listing_date", "severity", "disclosure_end", "last_idx", "entry",
    "list_code", "body_salt",
)  # fmt: skip
# Plain SQL over our own tables, read through the driver (dialect.fetch_rows).
_LEAVES_SQL = (
    "SELECT idx, data FROM log_leaves WHERE log_id = ? AND idx >= ? AND idx < ? ORDER BY idx"
)
_HASHES_SQL = (
    "SELECT idx, hash FROM log_hashes WHERE log_id = ? AND idx >= ? AND idx < ? ORDER BY idx"
)
_NOTES_SQL = "SELECT size, note FROM checkpoints WHERE log_id = ? AND size >= ? AND size <= ?"
_ROWS_SQL = (
    f"SELECT {', '.join(_ROW_COLUMNS)} FROM list_state "  # noqa: S608 - our own column names
    "WHERE log_id = ? AND last_idx >= ? AND last_idx < ?"
)
_OPENINGS_SQL = (
    "SELECT idx, field, entry_id, salt, value FROM disclosures "
    "WHERE log_id = ? AND idx >= ? AND idx < ?"
)


async def _newest(conn: AsyncConnection, log_id: int, entry_ids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in range(0, len(entry_ids), LOOKUP):
        rows = await conn.execute(
            select(STATE.c.entry_id, STATE.c.last_idx).where(
                and_(STATE.c.log_id == log_id, STATE.c.entry_id.in_(entry_ids[i : i + LOOKUP]))
            )
        )
        out.update((str(e), int(n)) for e, n in rows)
    return out


@dataclass
class Scan:
    """What a scan of leaves [start, built) found; picklable (a worker process returns it)."""

    start: int
    built: int
    frontier: bytes  # the rebuilt tree's frontier hashes at *built*
    findings: list[Finding]
    notes: list[tuple[int, bytes]]  # the checkpoints stored for sizes in the range
    roots: dict[int, bytes]  # the rebuilt root at each of those sizes
    leaves: int = 0
    hashes: int = 0
    state_rows: int = 0
    openings: int = 0
    stopped: bool = False  # a missing leaf row: nothing after it could be rebuilt


async def scan(
    store: Store,
    target: LogTarget,
    start: int,
    end: int,
    frontier: merkle.Frontier,
    *,
    share: float = 1.0,
    on_chunk: Callable[[int, merkle.Frontier, bool], object] | None = None,
) -> Scan:
    """Rebuild leaves [start, end) from *frontier* (the tree at *start*) against everything
    stored for them, chunk by chunk; the next chunk is read (in the driver's thread) while
    this one is checked."""
    tree = TreeCheck(target.label, frontier=frontier, sparse=target.kind == MIRROR)
    feed = target.kind in (OWN, MIRROR)
    state = StateCheck(target.label, holder=target.kind == MIRROR)
    out = Scan(start, start, b"", [], [], {})
    ahead: asyncio.Task[Chunk] | None = None
    try:
        for a in range(start, end, CHUNK):
            t0 = time.perf_counter()
            b = min(a + CHUNK, end)
            chunk = await (ahead or read_chunk(store, target.log_id, a, b, feed))
            ahead = None
            if b < end:
                ahead = asyncio.create_task(
                    read_chunk(store, target.log_id, b, min(b + CHUNK, end), feed)
                )
            wanted = {n for n, _ in chunk.notes}
            if a < target.checkpoint_size <= b:
                wanted.add(target.checkpoint_size)
            datas = tree.chunk(a, chunk.leaves, chunk.hashes, end=b, root_sizes=wanted)
            out.leaves += sum(d is not None for d in datas)
            out.hashes += len(chunk.hashes)
            out.notes += chunk.notes
            if feed:
                ids = state.prepare(a, datas, chunk.rows)
                newest: dict[str, int] = {}
                if ids:
                    async with store.engine.connect() as conn:
                        newest = await _newest(conn, target.log_id, ids)
                state.finish(newest, chunk.openings)
            if tree.frontier.size < b:  # a missing leaf: nothing after it can be rebuilt
                out.stopped = True
                break
            if on_chunk is not None:
                clean = not (tree.findings or state.findings)
                await _maybe_await(on_chunk(b, tree.frontier, clean))
            if share < 1.0:
                await asyncio.sleep((time.perf_counter() - t0) * (1.0 - share) / share)
    finally:
        if ahead is not None:
            ahead.cancel()
            with contextlib.suppress(BaseException):
                await ahead
    out.built = tree.frontier.size
    out.frontier = frontier_blob(tree.frontier)
    out.roots = tree.roots
    out.findings = [*tree.findings, *state.findings]
    out.state_rows = state.rows_checked
    out.openings = state.openings_checked
    return out


def _scan_in_process(url: str, target: LogTarget, start: int, end: int, blob: bytes) -> Scan:
    """A worker process's part of a parallel pass: its own connection, its own range."""

    async def run() -> Scan:
        frontier = frontier_from(start, blob)
        if frontier is None:
            raise ValueError(f"no tree at {start}")
        store = await Store.open(url, migrate=False)
        try:
            return await scan(store, target, start, end, frontier)
        finally:
            await store.close()

    return asyncio.run(run())


PARALLEL_MIN_LEAVES = 200_000  # below this a second process costs more than it saves


def _workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


async def _scan_parallel(store: Store, target: LogTarget, start: int, end: int) -> list[Scan]:
    """[start, end) cut into one range per core, each scanned by a worker process from the
    tree stored at its start. Sound because each stored hash is compared by the worker owning
    the leaf that completed it, with hashes rebuilt from a start every earlier worker checked:
    a wrong stored start shows as a finding in the worker before it."""
    n = _workers()
    step = -(-(end - start) // n)
    step = -(-step // CHUNK) * CHUNK  # whole chunks
    cuts = [*range(start, end, step), end]
    blobs: list[bytes] = []
    async with store.engine.connect() as conn:
        for p in cuts[:-1]:
            indexes = merkle.tree_hash_indexes(p)
            found = dict(
                await fetch_rows(
                    conn,
                    f"SELECT idx, hash FROM log_hashes WHERE log_id = ? AND idx IN "  # noqa: S608
                    f"({', '.join('?' for _ in indexes) or 'NULL'})",
                    (target.log_id, *indexes),
                )
            )
            # A missing stored hash: start from zeros; the worker before names the hash.
            blobs.append(b"".join(bytes(found.get(i, b"\x00" * 32)) for i in indexes))
    url = store.engine.url.render_as_string(hide_password=False)
    bare = dataclasses.replace(target, keys=[])  # keys stay here: checkpoints are checked here
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(blobs), mp_context=context) as pool:
        return list(
            await asyncio.gather(
                *(
                    loop.run_in_executor(pool, _scan_in_process, url, bare, a, b, blob)
                    for a, b, blob in zip(cuts, cuts[1:], blobs, strict=False)
                )
            )
        )


async def verify_log(
    store: Store,
    target: LogTarget,
    *,
    share: float = 1.0,
    resume: tuple[int, merkle.Frontier] | None = None,
    on_chunk: Callable[[int, merkle.Frontier, bool], object] | None = None,
    parallel: bool = False,
) -> LogReport:
    """One pass over one log (from *resume*'s position and tree, or from the start). After
    each chunk, *on_chunk* gets the position, the tree rebuilt so far and whether nothing was
    found yet (what a resumable pass keeps). *parallel*: a large log is scanned by one worker
    process per core (``creditnode verify``; not with *share*, *resume* or *on_chunk*)."""
    began = time.perf_counter()
    report = LogReport(target.log_id, target.label, target.kind, target.origin, target.size)
    position, frontier = resume if resume is not None else (0, merkle.Frontier())
    keys = target.keys
    if not keys:
        report.unchecked.append("checkpoint signatures (no key known: peer not enrolled)")
    if (
        parallel
        and resume is None
        and on_chunk is None
        and share >= 1.0
        and target.size >= PARALLEL_MIN_LEAVES
        and _workers() > 1
    ):
        try:
            scans = await _scan_parallel(store, target, 0, target.size)
        except (BrokenProcessPool, OSError, RuntimeError, ValueError) as exc:
            # No worker processes here (a sandbox, an embedding without a main guard): one
            # process does it all, slower but the same checks.
            log.warning("parallel verification unavailable; one process", reason=str(exc))
            scans = [await scan(store, target, 0, target.size, merkle.Frontier())]
    else:
        scans = [await scan(store, target, position, target.size, frontier, share=share,
                            on_chunk=on_chunk)]  # fmt: skip
    findings: list[Finding] = []
    roots: dict[int, bytes] = {}
    notes: list[tuple[int, bytes]] = []
    built = scans[0].start
    for part in scans:
        findings += part.findings
        roots.update(part.roots)
        notes += part.notes
        report.leaves += part.leaves
        report.hashes += part.hashes
        report.state_rows += part.state_rows
        report.openings += part.openings
        if built == part.start:  # the tree is whole up to the first range that stopped
            built = part.built
    last = frontier_from(scans[-1].built, scans[-1].frontier)
    tree = TreeCheck(target.label, frontier=last or merkle.Frontier(), findings=findings)
    tree.roots = roots
    checked_notes: list[Finding] = []

    def check_notes(
        found: Sequence[tuple[int, bytes]], stored: int, where: str = "checkpoints"
    ) -> None:
        for cp_size, note in found:
            report.checkpoints += 1
            _, bad = check_checkpoint(
                target.label, f"{where} size {cp_size}", note, keys, target.origin,
                roots, None if target.kind == MIRROR else stored,
            )  # fmt: skip
            checked_notes.extend(bad)

    check_notes([(n, d) for n, d in notes if n <= built], target.size)
    if target.checkpoint_note and 0 < target.checkpoint_size <= built:
        check_notes([(target.checkpoint_size, target.checkpoint_note)], target.size, LATEST)
    async with store.engine.connect() as conn:
        await _tail_checks(
            conn, target, report, tree, built, target.kind in (OWN, MIRROR), check_notes
        )
    if target.checkpoint_note and (target.checkpoint_size == 0 or target.checkpoint_size > built):
        stored = target.size if built < target.size else built
        check_notes([(target.checkpoint_size, target.checkpoint_note)], stored, LATEST)
    seen: set[tuple[str, str, str]] = set()
    for f in [*tree.findings, *checked_notes]:
        key = (f.kind, f.row, f.detail)
        if key not in seen:
            seen.add(key)
            report.findings.append(f)
    report.findings.sort(key=lambda f: (f.index is None, f.index or 0, _RANK.get(f.kind, 9)))
    report.seconds = time.perf_counter() - began
    return report


async def _maybe_await(value: object) -> None:
    if asyncio.iscoroutine(value):
        await value


async def _tail_checks(
    conn: AsyncConnection,
    target: LogTarget,
    report: LogReport,
    tree: TreeCheck,
    built: int,
    feed: bool,
    check_notes: Callable[[Sequence[tuple[int, bytes]], int], None],
) -> None:
    """What only the whole log shows: its cursor, rows past its end, checkpoints beyond it.

    The log may grow meanwhile: rows past the pass's size are read first and the size after,
    so only rows past the size as it then is are findings (an append commits its rows and its
    size together)."""
    label, log_id, size = target.label, target.log_id, target.size
    if built == size and tree.frontier.root() != target.root:
        tree.add(
            Finding(label, CURSOR, None, "logs root", "recorded root is not that of the leaves")
        )

    async def first(sql: str, *params: object) -> int | None:
        found = await fetch_rows(conn, sql, params)
        return None if not found or found[0][0] is None else int(found[0][0])

    leaf = await first(
        "SELECT min(idx) FROM log_leaves WHERE log_id = ? AND idx >= ?", log_id, size
    )
    hash_ = await first(
        "SELECT min(idx) FROM log_hashes WHERE log_id = ? AND idx >= ?",
        log_id,
        merkle.stored_hash_count(size),
    )
    beyond = [
        (int(n), bytes(d))
        for n, d in await fetch_rows(
            conn,
            "SELECT size, note FROM checkpoints WHERE log_id = ? AND size > ?",
            (log_id, built),
        )
    ]
    orphan = stray = None
    if feed:
        orphan = await first(
            "SELECT min(last_idx) FROM list_state WHERE log_id = ? AND last_idx >= ?", log_id, size
        )
        stray = await first(
            "SELECT min(idx) FROM disclosures WHERE log_id = ? AND idx >= ?", log_id, size
        )
    now = await first("SELECT size FROM logs WHERE id = ?", log_id)
    current = size if now is None else now
    if leaf is not None and leaf >= current:
        tree.add(Finding(label, EXTRA, leaf, f"log_leaves idx {leaf}", "leaf past the log size"))
    if hash_ is not None and hash_ >= merkle.stored_hash_count(current):
        tree.add(Finding(label, EXTRA, None, f"log_hashes idx {hash_}", "hash past the log size"))
    # Checkpoints the log grew into during the pass are not findings; beyond what is stored,
    # are (unless a leaf row missing inside the log stopped the rebuild: that is the finding).
    gap = built < size
    check_notes([(n, d) for n, d in beyond if n > current or gap], size if gap else built)
    if gap and not any(f.kind == MISSING for f in tree.findings):
        tree.add(
            Finding(
                label,
                TRUNCATED,
                built,
                "log_leaves",
                f"the log records {size} leaves; only {built} could be rebuilt",
            )
        )
    if orphan is not None and orphan >= current:
        tree.add(
            Finding(
                label,
                STATE_ORPHAN,
                orphan,
                "list_state",
                f"a row names leaf {orphan}, past the log size {current}",
            )
        )
    if stray is not None and stray >= current:
        tree.add(Finding(label, OPENING, stray, f"disclosures idx {stray}", "past the log size"))


# --- every log -------------------------------------------------------------------------


async def targets(home: Home, store: Store) -> list[LogTarget]:
    """Every log in the database: this node's feed first, its other logs, then mirrors."""
    own_origin = home.identity.uri
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(LOGS).order_by(LOGS.c.id))).mappings().all()
    out: list[LogTarget] = []
    for r in rows:
        origin, peer = str(r["origin"]), r["peer"]
        if peer is not None:
            kind, label = MIRROR, f"{peer} (mirror)"
            keys = await peer_keys(store, str(peer), origin)
        elif origin == own_origin:
            kind, label = OWN, f"{home.settings.name} (own feed)"
            keys = own_keys(home, (FEED,), (origin,))
        else:
            name = "audit" if origin == audit_origin(own_origin) else origin[-60:]
            kind, label = LOCAL, f"{home.settings.name} ({name} log)"
            keys = own_keys(home, (FEED, AUDIT), (origin, own_origin))
        out.append(
            LogTarget(
                int(r["id"]),
                origin,
                None if peer is None else str(peer),
                kind,
                label,
                int(r["size"]),
                bytes(r["root"]),
                int(r["checkpoint_size"]),
                bytes(r["checkpoint_note"]),
                keys,
            )
        )
    out.sort(key=lambda t: (t.kind != OWN, t.kind == MIRROR, t.log_id))
    return out


async def verify_store(
    home: Home, store: Store, *, share: float = 1.0, parallel: bool = False
) -> Report:
    """One whole pass over every log, at full speed unless *share* < 1 (a large log by one
    worker process per core with *parallel*); findings recorded."""
    report = Report()
    for target in await targets(home, store):
        if target.kind == MIRROR:
            await fold_on_demand(store, target)
        started = utcnow()
        result = await verify_target(home, store, target, share=share, parallel=parallel)
        if target.kind in (OWN, MIRROR) and not result.findings:
            # The scan found every leaf to be the bytes the tree and signed checkpoint commit
            # to: the bytes that passed the strict parse on arrival.
            diff = await projection.compare(store, target.log_id, checked=True)
            if diff is not None:
                result.findings.append(
                    Finding(target.label, PROJECTION, diff[0], "list_state", diff[1])
                )
            drift = await counter_diff(store, target.log_id)
            if drift is not None:
                result.findings.append(Finding(target.label, COUNTERS, None, *drift))
            unindexed = await name_index_diff(store, target.log_id)
            if unindexed is not None:
                result.findings.append(Finding(target.label, NAMES, None, *unindexed))
        report.logs.append(result)
        await record(store, target, result, started)
        await save_progress(store, target.log_id, 0, b"", started, verified=result.size)
    return report


async def fold_on_demand(store: Store, target: LogTarget) -> None:
    """Fold what a mirror holds and has not projected yet (a sync interrupted between its
    durable write and the fold), so the state check sees the projection of every leaf. A
    leaf that no longer opens is left to the checks to name."""
    try:
        await projection.fold(store, target.log_id)
    except FeedError as exc:
        log.warning("projection not caught up", log=target.label, reason=str(exc))


async def save_progress(
    store: Store,
    log_id: int,
    position: int,
    frontier: bytes,
    started: dt.datetime,
    *,
    verified: int | None = None,
) -> None:
    """Where the current pass over a log is (*position*, the tree there) or, with
    *verified*, that a whole pass over its first *verified* leaves just ended."""
    values: dict[str, object] = {
        "position": position,
        "frontier": frontier,
        "pass_started_at": started,
    }
    if verified is not None:
        values |= {"verified_size": verified, "verified_at": utcnow()}
    async with store.begin() as conn:
        done = await conn.execute(
            update(PROGRESS).where(PROGRESS.c.log_id == log_id).values(**values)
        )
        if done.rowcount == 0:
            await conn.execute(
                insert(PROGRESS).values(log_id=log_id, **({"verified_size": 0} | values))
            )


async def verify_target(
    home: Home,
    store: Store,
    target: LogTarget,
    *,
    share: float = 1.0,
    resume: tuple[int, merkle.Frontier] | None = None,
    on_chunk: Callable[[int, merkle.Frontier, bool], object] | None = None,
    parallel: bool = False,
) -> LogReport:
    """:func:`verify_log`, and for the audit log also its ``audit_entries`` index against
    its leaves (``node.audit``'s own check)."""
    result = await verify_log(
        store, target, share=share, resume=resume, on_chunk=on_chunk, parallel=parallel
    )
    if target.origin == audit_origin(home.identity.uri):
        for f in await verify_audit_log(store, home.identity.uri, target.keys or None):
            # The tree and checkpoint findings of the generic check come first; the index
            # table is what only the audit module knows.
            if "audit_entries" in f.problem or "not a valid entry" in f.problem:
                result.findings.append(
                    Finding(
                        target.label,
                        INDEX,
                        f.index,
                        "audit_entries" if f.index is None else f"audit_entries idx {f.index}",
                        f.problem,
                    )
                )
        result.findings.sort(key=lambda f: (f.index is None, f.index or 0, _RANK.get(f.kind, 9)))
    return result


async def record(store: Store, target: LogTarget, result: LogReport, started: dt.datetime) -> None:
    """Keep a completed pass's findings (older ones of the log go) and mark the log."""
    async with store.begin() as conn:
        await conn.execute(
            delete(FINDINGS).where(
                and_(FINDINGS.c.log_id == target.log_id, FINDINGS.c.found_at < started)
            )
        )
        for f in result.findings:
            await conn.execute(
                insert(FINDINGS).values(
                    log_id=target.log_id,
                    kind=f.kind,
                    idx=f.index,
                    row=f.row[:200],
                    detail=f.detail[:500],
                    found_at=utcnow(),
                )
            )
        cur = (
            await conn.execute(
                select(LOGS.c.state, LOGS.c.state_detail).where(LOGS.c.id == target.log_id)
            )
        ).first()
        if cur is None:
            return
        # A mark set by the subscriber (a fork, a tampered feed or refused checkpoint) stays:
        # only an operator clears it (`creditnode evidence clear`), never a verifier's pass.
        by_sync = cur[0] == "forked" or (
            cur[0] == TAMPERED and not str(cur[1]).startswith(VERIFY_PREFIX)
        )
        if result.findings and not by_sync:
            first = result.findings[0]
            await conn.execute(
                update(LOGS)
                .where(LOGS.c.id == target.log_id)
                .values(state=TAMPERED, state_detail=(VERIFY_PREFIX + first.describe())[:500])
            )
        elif not result.findings and cur[0] == TAMPERED and str(cur[1]).startswith(VERIFY_PREFIX):
            await conn.execute(
                update(LOGS).where(LOGS.c.id == target.log_id).values(state="ok", state_detail="")
            )
    for f in result.findings:
        log.error(
            "stored data does not verify",
            log=f.log, kind=f.kind, index=f.index, row=f.row, detail=f.detail,
        )  # fmt: skip


async def open_findings(store: Store) -> dict[int, list[Finding]]:
    """Findings kept by earlier passes, by log id (what ``status`` shows)."""
    out: dict[int, list[Finding]] = {}
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            select(FINDINGS.c.log_id, FINDINGS.c.kind, FINDINGS.c.idx, FINDINGS.c.row,
                   FINDINGS.c.detail, LOGS.c.origin)
            .select_from(FINDINGS.join(LOGS, LOGS.c.id == FINDINGS.c.log_id))
            .order_by(FINDINGS.c.log_id, FINDINGS.c.id)
        )  # fmt: skip
        for log_id, kind, idx, row, detail, origin in rows:
            out.setdefault(int(log_id), []).append(
                Finding(str(origin), str(kind), None if idx is None else int(idx), row, detail)
            )
    return out


@dataclass(frozen=True)
class VerificationRow:
    """What ``status`` shows of one log: its last whole pass and its standing findings."""

    origin: str
    verified_at: dt.datetime | None
    verified_size: int
    position: int
    findings: list[Finding]


async def verification_rows(store: Store) -> list[VerificationRow]:
    """Every log with the last whole pass over it and the findings standing against it."""
    found = await open_findings(store)
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            select(LOGS.c.id, LOGS.c.origin, PROGRESS.c.verified_at, PROGRESS.c.verified_size,
                   PROGRESS.c.position)
            .select_from(LOGS.outerjoin(PROGRESS, PROGRESS.c.log_id == LOGS.c.id))
            .order_by(LOGS.c.id)
        )  # fmt: skip
        return [
            VerificationRow(
                str(origin),
                at,
                int(size or 0),
                int(position or 0),
                found.get(int(log_id), []),
            )
            for log_id, origin, at, size, position in rows
        ]
