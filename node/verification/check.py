"""Re-checking stored data (pure): a log's tree rebuilt from its leaf bytes chunk by chunk
against its stored hashes and signed checkpoints, and a feed's list state and openings
re-derived from its leaves and compared row by row.

Every check names the first bad leaf index or row and never a data value: a finding says
*which* column of *which* entry differs, not what it holds.

    tree = TreeCheck("jinan (own feed)")
    tree.chunk(0, leaf_rows, hash_rows, end=3, root_sizes={3})  # rows: (index, bytes)
    tree.findings  # [] if every stored hash is the one rebuilt from the leaves
    tree.roots[3]  # the root of the first three leaves as rebuilt, for the checkpoint check
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from google.protobuf.message import DecodeError

from keys import VerifyingKey
from node.api import feeds
from node.feeds import merkle
from node.feeds.leaf import BODY, COMMITTED_FIELDS
from node.feeds.note import Checkpoint, NoteError, open_checkpoint

MAX_FINDINGS = 20  # per log and pass: the first bad index is what matters; memory stays bounded

# Kinds of finding, named for what was found wrong.
LEAF = "leaf"  # a leaf's bytes do not hash to its stored leaf hash, or do not parse
STORED_HASH = "stored-hash"  # a stored tree hash differs from the one rebuilt from the leaves
MISSING = "missing-row"  # a leaf or hash row is missing inside the log
EXTRA = "extra-row"  # rows past the log's size
CURSOR = "cursor"  # the log's recorded size or root is not that of its leaves
TRUNCATED = "truncated"  # a signed checkpoint covers more leaves than are stored
CHECKPOINT_SIGNATURE = "checkpoint-signature"  # a stored checkpoint does not verify
CHECKPOINT_ROOT = "checkpoint-root"  # a signed root differs from the root of the stored leaves
STATE_ROW = "state-row"  # a list-state row differs from what its newest leaf says
STATE_MISSING = "state-missing"  # an entry in the log has no list-state row
STATE_STALE = "state-stale"  # a list-state row names an older leaf than the entry's newest
STATE_ORPHAN = "state-orphan"  # a list-state row with no leaf of its entry there
BODY_KIND = "body"  # a stored entry body does not open its leaf's commitment
OPENING = "opening"  # a stored opening does not match its leaf's commitment
INDEX = "index"  # a derived index (the audit log's entries table) differs from its leaves
PROJECTION = "projection"  # the list state differs from a rebuild of it from the log
COUNTERS = "counters"  # an active-entry counter differs from a recount of the list state
NAMES = "names"  # SQLite's name index does not hold a list-state row's name as stored


@dataclass(frozen=True)
class Finding:
    """One thing stored that does not verify: in which log, what, and the first bad index or
    row. *detail* is ours, never a stored value."""

    log: str
    kind: str
    index: int | None
    row: str
    detail: str

    def describe(self) -> str:
        where = f" at {self.row}" if self.row else ""
        return f"{self.log}: {self.kind}{where}: {self.detail}"


@dataclass
class TreeCheck:
    """The tree of one log rebuilt from its leaf bytes, fed in order, chunk by chunk."""

    log: str
    frontier: merkle.Frontier = field(default_factory=merkle.Frontier)
    findings: list[Finding] = field(default_factory=list)
    roots: dict[int, bytes] = field(default_factory=dict)
    first_bad_leaf: int | None = None
    # A mirror keeps only the hashes on its frontier at each append (issue 17): a hash row
    # absent is no finding, one present must still be the rebuilt one.
    sparse: bool = False

    def add(self, finding: Finding) -> None:
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(finding)

    def chunk(
        self,
        start: int,
        leaves: Sequence[tuple[int, bytes]],
        stored: Sequence[tuple[int, bytes]],
        *,
        end: int,
        root_sizes: Collection[int] = (),
    ) -> list[bytes | None]:
        """Rebuild leaves [start, end) (*leaves*: their (index, bytes) rows as stored) and
        compare every hash with *stored* ((stored index, hash) rows of that range). Returns
        each leaf's bytes, or None where the row is missing (a missing leaf stops the tree:
        nothing after it can be rebuilt)."""
        if self.frontier.size != start:
            raise ValueError(f"chunk starts at {start}, the tree is at {self.frontier.size}")
        fast = self._fast(start, leaves, stored, end, root_sizes)
        if fast is not None:
            return fast
        by_index = dict(leaves)
        expected = {i: h for i, h in stored}
        out: list[bytes | None] = []
        for i in range(start, end):
            data = by_index.get(i)
            out.append(data)
            if data is None:
                if self.first_bad_leaf is None:
                    self.first_bad_leaf = i
                self.add(Finding(self.log, MISSING, i, f"log_leaves idx {i}", "leaf row missing"))
                return out + [None] * (end - i - 1)
            for idx, h in self.frontier.append(merkle.leaf_hash(data)):
                have = expected.get(idx)
                if have == h or (have is None and self.sparse):
                    continue
                level, _ = merkle.split_stored_hash_index(idx)
                if have is None:
                    self.add(
                        Finding(self.log, MISSING, i, f"log_hashes idx {idx}", "hash row missing")
                    )
                elif level == 0:
                    self._bad_leaf(i, idx)
                else:
                    self.add(
                        Finding(
                            self.log,
                            STORED_HASH,
                            i,
                            f"log_hashes idx {idx}",
                            f"stored level-{level} hash (completed by leaf {i}) differs from "
                            "the one rebuilt from the leaves",
                        )
                    )
            if self.frontier.size in root_sizes:
                self.roots[self.frontier.size] = self.frontier.root()
        return out

    def _fast(
        self,
        start: int,
        leaves: Sequence[tuple[int, bytes]],
        stored: Sequence[tuple[int, bytes]],
        end: int,
        root_sizes: Collection[int],
    ) -> list[bytes | None] | None:
        """The common case, at the speed of hashing: every row there and every hash equal.
        None (nothing changed) if anything differs: the careful path then names it."""
        n = end - start
        lo, hi = merkle.stored_hash_index(0, start), merkle.stored_hash_index(0, end)
        if (
            len(leaves) != n
            or (len(stored) != hi - lo and not self.sparse)
            or (n and (leaves[0][0] != start or leaves[-1][0] != end - 1))
            or (stored and not self.sparse and (stored[0][0] != lo or stored[-1][0] != hi - 1))
        ):
            return None  # rows are ordered and unique (primary keys): ends and count suffice
        sha = hashlib.sha256
        stack = list(self.frontier.hashes)
        size = start
        computed: list[bytes] = []
        roots: dict[int, bytes] = {}
        for _, data in leaves:
            h = sha(b"\x00" + data).digest()
            computed.append(h)
            k = size
            while k & 1:
                h = sha(b"\x01" + stack.pop() + h).digest()
                computed.append(h)
                k >>= 1
            stack.append(h)
            size += 1
            if size in root_sizes:
                r = stack[-1]
                for left in reversed(stack[:-1]):
                    r = sha(b"\x01" + left + r).digest()
                roots[size] = r
        if self.sparse and len(stored) != hi - lo:
            if any(not lo <= i < hi or computed[i - lo] != h for i, h in stored):
                return None
        elif computed != [h for _, h in stored]:
            return None
        self.frontier = merkle.Frontier.from_hashes(
            size, dict(zip(merkle.tree_hash_indexes(size), stack, strict=True))
        )
        self.roots.update(roots)
        return [d for _, d in leaves]

    def _bad_leaf(self, i: int, idx: int) -> None:
        if self.first_bad_leaf is None:
            self.first_bad_leaf = i
        self.add(
            Finding(
                self.log,
                LEAF,
                i,
                f"log_leaves idx {i}",
                f"leaf {i} does not hash to its stored leaf hash (log_hashes idx {idx}): "
                "the leaf bytes or that hash were changed",
            )
        )


def check_checkpoint(
    log: str,
    what: str,
    note: bytes,
    keys: Iterable[VerifyingKey],
    origin: str,
    roots: Mapping[int, bytes],
    stored_size: int | None,
) -> tuple[Checkpoint | None, list[Finding]]:
    """A stored signed checkpoint: signed by one of *keys* for *origin*, within the stored
    leaves (*stored_size*; None where a checkpoint may run ahead of them: a mirror whose
    catch-up was interrupted), and with the root rebuilt from them (*roots*, by size)."""
    keyset = list(keys)
    if not keyset:
        return None, []
    try:
        cp = open_checkpoint(note, keyset, origin=origin)
    except NoteError as exc:
        return None, [Finding(log, CHECKPOINT_SIGNATURE, None, what, f"does not verify: {exc}")]
    if stored_size is not None and cp.size > stored_size:
        return cp, [
            Finding(
                log,
                TRUNCATED,
                stored_size,
                what,
                f"signed for size {cp.size}, but only {stored_size} leaves are stored: "
                f"the log was cut at leaf {stored_size}",
            )
        ]
    root = merkle.empty_root() if cp.size == 0 else roots.get(cp.size)
    if root is not None and not hmac.compare_digest(root, cp.root):
        return cp, [
            Finding(
                log,
                CHECKPOINT_ROOT,
                None,
                what,
                f"the signed root of size {cp.size} is not the root of the stored leaves: "
                "a leaf before it was changed",
            )
        ]
    return cp, []


# --- list state ----------------------------------------------------------------------------


class StateRow(NamedTuple):
    """A ``list_state`` row as stored (the columns a leaf decides). A named tuple: a scan
    makes one per entry, and a frozen dataclass costs several times as much to build."""

    entry_id: str
    list_name: str
    list_type: int
    subject_type: int
    subject_name: str
    uscc: str
    status: int
    removal_reason: int
    listing_date: str
    severity: int
    disclosure_end: str
    last_idx: int
    entry: bytes
    list_code: str
    body_salt: bytes | None

    @property
    def label(self) -> str:
        return f"list_state entry {self.entry_id[:64]}"


class OpeningRow(NamedTuple):
    """A ``disclosures`` row as stored."""

    idx: int
    field: str
    entry_id: str
    salt: bytes
    value: str


_BODY_COLUMNS = (
    "list_name", "list_type", "subject_type", "subject_name", "uscc", "listing_date",
    "severity", "disclosure_end",
)  # fmt: skip
_SUBJECT_COLUMNS = ("subject_type", "subject_name", "uscc")
_EMPTY_WITHOUT_BODY = (*_SUBJECT_COLUMNS, "listing_date", "severity", "disclosure_end")


def _row_columns(row: StateRow) -> tuple[object, ...]:
    return (
        row.list_name, row.list_type, row.subject_type, row.subject_name, row.uscc,
        row.listing_date, row.severity, row.disclosure_end,
    )  # fmt: skip


def _entry_columns(e: feeds.ListEntry) -> tuple[object, ...]:
    return (
        e.list_name, e.list_type, e.subject_type, e.subject_name, e.uscc, e.listing_date,
        e.severity, e.disclosure_end,
    )  # fmt: skip


def _differs(row: StateRow, entry: feeds.ListEntry) -> list[str]:
    have, want = _row_columns(row), _entry_columns(entry)
    if have == want:
        return []
    return [c for c, a, b in zip(_BODY_COLUMNS, have, want, strict=True) if a != b]


def _prefix(name: str) -> bytes:
    encoded = name.encode()
    return len(encoded).to_bytes(4, "big") + encoded


# The length-and-name prefix of each name a commitment is made under, made once.
_PREFIXES: dict[str, bytes] = {n: _prefix(n) for n in (BODY, *COMMITTED_FIELDS)}


def _commit(salt: bytes, name: str, value: str | bytes) -> bytes:
    """:func:`node.feeds.leaf.commitment` (the same bytes hashed), at the speed a scan needs."""
    prefix = _PREFIXES.get(name) or _prefix(name)
    data = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(salt + prefix + data).digest()


def _parse(message: feeds.LeafEntry | feeds.ListEntry, data: bytes) -> bool:
    try:
        message.ParseFromString(data)
    except DecodeError:
        return False
    return True


@dataclass
class StateCheck:
    """A feed's list state and openings re-derived from its leaves, chunk by chunk: first
    :meth:`prepare` (which names the entries whose rows must be looked up), then
    :meth:`finish`.

    Leaves are parsed plainly, not strictly: the tree check and the signed checkpoint prove
    them the very bytes that passed the strict parser when they were accepted, and a body or
    opening that opens a leaf's commitment is likewise the one accepted with it.

    *holder*: a mirror, whose removed entries keep nothing but their id, list and removal.
    """

    log: str
    holder: bool
    findings: list[Finding] = field(default_factory=list)
    rows_checked: int = 0
    openings_checked: int = 0
    _start: int = 0
    _parsed: list[feeds.LeafEntry | None] = field(default_factory=list)
    _rows_at: dict[int, StateRow] = field(default_factory=dict)

    def add(self, finding: Finding) -> None:
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(finding)

    def prepare(
        self, start: int, leaves: Sequence[bytes | None], rows: Iterable[StateRow]
    ) -> list[str]:
        """Take a chunk: leaves [start, start + len(leaves)) and the state rows naming one of
        them as their entry's newest. Returns the entries of the other leaves, whose rows
        must be looked up (and must name a later leaf)."""
        self._start = start
        self._rows_at = self._index_rows(rows)
        self._parsed = []
        lookup: list[str] = []
        for i, data in enumerate(leaves, start):
            if data is None:
                self._parsed.append(None)  # reported by the tree check
                continue
            leaf = feeds.LeafEntry()
            if not _parse(leaf, data) or not leaf.entry_id:
                self.add(Finding(self.log, LEAF, i, f"log_leaves idx {i}", "leaf does not parse"))
                self._parsed.append(None)
                continue
            self._parsed.append(leaf)
            if i not in self._rows_at:
                lookup.append(leaf.entry_id)
        return lookup

    def _index_rows(self, rows: Iterable[StateRow]) -> dict[int, StateRow]:
        # Two rows naming one leaf cannot both be right (a leaf is of one entry).
        out: dict[int, StateRow] = {}
        for row in rows:
            if row.last_idx in out:
                self.add(
                    Finding(
                        self.log,
                        STATE_ORPHAN,
                        row.last_idx,
                        row.label,
                        f"names leaf {row.last_idx}, which another row names",
                    )
                )
                continue
            out[row.last_idx] = row
        return out

    def finish(self, newest: Mapping[str, int], openings: Iterable[OpeningRow]) -> None:
        """Check the chunk taken by :meth:`prepare`: each row naming a leaf matches it; every
        other leaf's entry has a row naming a later leaf (*newest*: entry id -> last_idx);
        each opening opens its leaf's commitment."""
        start = self._start
        for i, leaf in enumerate(self._parsed, start):
            if leaf is None:
                continue
            row = self._rows_at.get(i)
            if row is not None:
                self._check_row(i, leaf, row)
                continue
            last = newest.get(leaf.entry_id)
            label = f"list_state entry {leaf.entry_id[:64]}"
            if last is None:
                self.add(
                    Finding(self.log, STATE_MISSING, i, label, f"entry of leaf {i} has no row")
                )
            elif last < i:
                self.add(
                    Finding(
                        self.log, STATE_STALE, i, label, f"names leaf {last}; leaf {i} is newer"
                    )
                )
        end = start + len(self._parsed)
        parsed = self._parsed
        count = 0
        # Rows as the driver gave them ((idx, field, entry_id, salt, value), the shape of
        # OpeningRow): a scan meets one per opening, too many to wrap each.
        for idx, name, entry_id, salt, value in openings:
            count += 1
            leaf = parsed[idx - start] if start <= idx < end else None
            if leaf is None:
                continue
            want = None
            for c in leaf.commitments:
                if c.field == name:
                    want = c.digest
                    break
            if entry_id != leaf.entry_id:
                problem = "names another entry"
            elif want is None or not hmac.compare_digest(_commit(salt, name, value), want):
                problem = f"does not open leaf {idx}'s commitment"
            else:
                continue
            label = f"disclosures idx {idx} field {str(name)[:40]}"
            self.add(Finding(self.log, OPENING, idx, label, problem))
        self.openings_checked += count

    def _check_row(self, i: int, leaf: feeds.LeafEntry, row: StateRow) -> None:
        """The row that names leaf *i* as its entry's newest."""
        self.rows_checked += 1

        def bad(kind: str, detail: str) -> None:
            self.add(Finding(self.log, kind, i, row.label, detail))

        if leaf.entry_id != row.entry_id:
            return bad(STATE_ORPHAN, f"row names leaf {i}, which is of another entry")
        removal = leaf.event == feeds.EVENT_TYPE_REMOVE
        status = feeds.ENTRY_STATUS_REMOVED if removal else feeds.ENTRY_STATUS_ACTIVE
        reason = int(leaf.removal_reason) if removal else 0
        if (row.status, row.removal_reason, row.list_code) != (status, reason, leaf.list_code):
            wrong = [
                c
                for c, have, want in (
                    ("status", row.status, status),
                    ("removal_reason", row.removal_reason, reason),
                    ("list_code", row.list_code, leaf.list_code),
                )
                if have != want
            ]
            return bad(STATE_ROW, f"{', '.join(wrong)} differ from leaf {i}")
        if not row.entry:
            if row.body_salt is not None:
                return bad(STATE_ROW, "a body salt without a body")
            if not removal and not self.holder:
                return bad(BODY_KIND, f"the origin holds no body of its live leaf {i}")
            # Without a body nothing about the subject may be held (a holder's removed or
            # expired entry, or a leaf that came bare).
            held = [
                c for c in (_EMPTY_WITHOUT_BODY if removal else _SUBJECT_COLUMNS) if getattr(row, c)
            ]
            if held:
                return bad(STATE_ROW, f"{', '.join(held)} held without a committed body")
            return None
        entry = feeds.ListEntry()
        if removal:
            if self.holder:
                return bad(STATE_ROW, "a holder keeps a removed entry's body")
            # The origin keeps a removed entry's last body; its commitment is in an earlier
            # leaf, so here the body is only checked to parse and to agree with the row.
            if not _parse(entry, row.entry):
                return bad(BODY_KIND, "the kept body does not parse")
            differ = _differs(row, entry)
            if differ:
                return bad(STATE_ROW, f"{', '.join(differ)} differ from the kept body")
            return None
        if row.body_salt is None:
            return bad(BODY_KIND, "a body without its salt")
        if not hmac.compare_digest(_commit(row.body_salt, BODY, row.entry), leaf.body_commitment):
            return bad(BODY_KIND, f"does not open leaf {i}'s body commitment")
        if not _parse(entry, row.entry):
            return bad(BODY_KIND, "the body does not parse")
        differ = _differs(row, entry)
        if differ:
            return bad(STATE_ROW, f"{', '.join(differ)} differ from the body committed in leaf {i}")
        return None
