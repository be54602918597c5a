"""SQLModel tables. Every table is created by an Alembic migration, never by create_all."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class PeerRecord(SQLModel, table=True):
    """An enrolled peer: its public bundle and what this node last observed of it."""

    __tablename__ = "peers"

    name: str = Field(primary_key=True, max_length=63)
    federation: str = Field(max_length=63)
    region: str = Field(max_length=6)
    endpoint: str = Field(max_length=300)
    ca_certificate: str = Field(sa_column=Column(Text, nullable=False))
    tls_certificate: str = Field(sa_column=Column(Text, nullable=False))
    feed_key: str = Field(max_length=300)
    enrolled_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    state: str = Field(default="unknown", max_length=16)
    last_seen: dt.datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    last_error: str = Field(default="", max_length=500)
    software_version: str = Field(default="", max_length=40)
    protocol_version: str = Field(default="", max_length=10)
    # SHA-256 (hex) of the peer's root v1 pinned at enrollment; "" if its bundle had no root.
    root_v1_sha256: str = Field(default="", max_length=64)


class PeerRootRecord(SQLModel, table=True):
    """One version of an enrolled peer's root metadata, exactly as signed, that this node
    verified: v1 from the bundle (pinned at ``peer add``), later ones chained from it."""

    __tablename__ = "peer_roots"

    peer: str = Field(primary_key=True, max_length=63)
    version: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class LogRecord(SQLModel, table=True):
    """One Merkle log: this node's own (peer is None) or a mirrored peer's, with its cursor."""

    __tablename__ = "logs"

    id: int | None = Field(default=None, primary_key=True)
    origin: str = Field(max_length=200, unique=True)
    peer: str | None = Field(default=None, max_length=63)
    size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    checkpoint_size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    checkpoint_note: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False))
    state: str = Field(default="ok", max_length=16)
    state_detail: str = Field(default="", max_length=500)
    updated_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    # The size the list state, openings and counters are folded up to (migration 0022).
    projected_size: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, default=0, server_default="0")
    )


class LeafOpenings(SQLModel, table=True):
    """What opens a mirrored leaf (a serialized FeedLeaf without its entry: body and disclosed
    fields), written with the leaf, deleted when the projection folds it (migration 0022)."""

    __tablename__ = "leaf_openings"

    log_id: int = Field(primary_key=True)
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True))
    openings: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class LogLeaf(SQLModel, table=True):
    """A leaf's exact bytes, as hashed."""

    __tablename__ = "log_leaves"

    log_id: int = Field(primary_key=True)
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class LogHash(SQLModel, table=True):
    """A stored tree hash (tlog stored-hash indexing)."""

    __tablename__ = "log_hashes"

    log_id: int = Field(primary_key=True)
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class CheckpointRecord(SQLModel, table=True):
    """Every signed checkpoint made (own log) or verified (mirror)."""

    __tablename__ = "checkpoints"

    log_id: int = Field(primary_key=True)
    size: int = Field(sa_column=Column(BigInteger, primary_key=True))
    note: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    recorded_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class DisclosureRecord(SQLModel, table=True):
    """An opening of a committed field: all of them for the own log, what was received for a
    mirror. Deleted when the entry is removed, so a repaired record stops being shared."""

    __tablename__ = "disclosures"
    __table_args__ = (Index("ix_disclosures_field_value", "field", "value"),)

    log_id: int = Field(primary_key=True)
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True))
    field: str = Field(primary_key=True, max_length=40)
    entry_id: str = Field(max_length=64, index=True)
    salt: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    value: str = Field(sa_column=Column(Text, nullable=False))


class ListStateRecord(SQLModel, table=True):
    """Current state of every entry per log, removals applied (the mirror). ``entry`` is the
    body exactly as committed in the entry's newest leaf, ``body_salt`` opens that commitment.
    A holder keeps of a removed entry only its id, list and removal; the origin keeps it all."""

    __tablename__ = "list_state"
    __table_args__ = (
        Index("ix_list_state_last_idx", "log_id", "last_idx"),
        Index("ix_list_state_code", "log_id", "list_code", "status"),  # issue 14's classes
        # Issue 17, conflicts without a scan (migration 0020): name variants per USCC, USCCs
        # per embedded organisation code, and the few peers' codes that fail validation.
        Index("ix_list_state_name_norm", "uscc", "name_norm"),
        Index("ix_list_state_org", text("substr(uscc, 9, 9)"), "uscc"),
        # Partial (WHERE code_suspect = 1) in migration 0020: a dialect option here would make
        # SQLAlchemy import the PostgreSQL dialect on every start (tests/test_startup.py).
        Index("ix_list_state_suspect", "uscc"),
    )

    log_id: int = Field(primary_key=True)
    entry_id: str = Field(primary_key=True, max_length=64)
    list_name: str = Field(max_length=200)
    list_type: int = 0
    subject_type: int = 0
    subject_name: str = Field(default="", max_length=300)
    # Read by USCC through ix_list_state_name_norm, which begins with it (migration 0026).
    uscc: str = Field(default="", max_length=18)
    status: int = 0
    removal_reason: int = 0
    listing_date: str = Field(default="", max_length=10)
    severity: int = 0
    disclosure_end: str = Field(default="", max_length=10)
    last_idx: int = Field(sa_column=Column(BigInteger, nullable=False))
    entry: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    list_code: str = Field(default="", max_length=40)
    body_salt: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    # normalise_name(subject_name) (at most NAME_NORM_MAX characters), NULL without a name.
    name_norm: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # 1 on a peer's row whose USCC fails validation (a 重错码 candidate), else 0.
    code_suspect: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))


class ListCount(SQLModel, table=True):
    """Issue 17: active entries per (log, list, disclosure end), kept by ``apply_leaves`` in
    the transaction that writes the rows, so `status` counts without a scan of list_state.
    See node/feeds/counts.py for why the disclosure end is part of the key."""

    __tablename__ = "list_counts"

    log_id: int = Field(primary_key=True)
    list_name: str = Field(primary_key=True, max_length=200)
    disclosure_end: str = Field(primary_key=True, max_length=10)
    n: int = Field(sa_column=Column(BigInteger, nullable=False))


class ConflictCandidate(SQLModel, table=True):
    """Issue 17: a USCC (kind ``uscc``) seen under two normalised names, or a code (kind
    ``code``) naming two USCCs by embedding or crosswalk, in any row ever written. Kept by the
    writers in their transactions; only ever added to, so a superset of the live conflicts,
    which ``find_conflicts`` judges on the candidates' active rows."""

    __tablename__ = "conflict_candidates"

    kind: str = Field(primary_key=True, max_length=8)
    key: str = Field(primary_key=True, max_length=18)


class OwnEntryRecord(SQLModel, table=True):
    """The origin's import state: which natural key maps to which entry id and content."""

    __tablename__ = "own_entries"

    list_name: str = Field(primary_key=True, max_length=200)
    natural_key: str = Field(primary_key=True, max_length=64)
    entry_id: str = Field(max_length=64, unique=True)
    content_hash: str = Field(max_length=64)
    active: bool = True


class ImportRecord(SQLModel, table=True):
    __tablename__ = "imports"

    id: int | None = Field(default=None, primary_key=True)
    list_name: str = Field(max_length=200)
    file: str = Field(max_length=1000)
    encoding: str = Field(max_length=20)
    read: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    quarantined: int = 0
    finished_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    # Subject USCCs checked, failed, and accepted only as the pre-2016 defect (migration 0017).
    uscc_checked: int = 0
    uscc_invalid: int = 0
    uscc_lenient: int = 0


class QuarantineRecord(SQLModel, table=True):
    """A row an import refused, with why. Never holds the row's personal values."""

    __tablename__ = "quarantine"

    id: int | None = Field(default=None, primary_key=True)
    import_id: int = Field(index=True)
    file: str = Field(max_length=1000)
    row: int
    column: str = Field(default="", max_length=40)
    reason: str = Field(max_length=500)


class EvidenceRecord(SQLModel, table=True):
    """Portable proof that a peer's log forked or rolled back: both signed checkpoints and
    the proof that fails between them."""

    __tablename__ = "feed_evidence"

    id: int | None = Field(default=None, primary_key=True)
    log_id: int = Field(index=True)
    kind: str = Field(max_length=20)
    detail: str = Field(max_length=500)
    earlier_note: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    later_note: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    proof: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    recorded_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class CrosswalkRecord(SQLModel, table=True):
    """A legacy identifier linked to a USCC by registry data."""

    __tablename__ = "crosswalk"

    legacy: str = Field(primary_key=True, max_length=18)
    uscc: str = Field(primary_key=True, max_length=18, index=True)
    kind: str = Field(max_length=10)
    source: str = Field(max_length=1000)
    loaded_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class AuditEntryRecord(SQLModel, table=True):
    """One leaf of the node's audit log, parsed, for filtering (``node.audit``): the leaf is
    the record, this row an index that ``verify_audit_log`` re-derives and compares."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        UniqueConstraint("exchange", "direction", "seq", name="uq_audit_exchange"),
        Index("ix_audit_at", "at"),
        Index("ix_audit_peer_at", "peer", "at"),
        Index("ix_audit_officer_at", "officer", "at"),
        Index("ix_audit_subject", "subject"),
    )

    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    exchange: str = Field(max_length=36)
    direction: str = Field(max_length=8)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    at: dt.datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    kind: str = Field(max_length=20)
    outcome: str = Field(max_length=10)
    peer: str = Field(max_length=63)
    method: str = Field(max_length=200)
    officer: str = Field(max_length=32)
    department: str = Field(max_length=18)
    purpose: str = Field(max_length=40)
    subject: str = Field(max_length=64)
    response: str = Field(max_length=64)
    values: int = 0
    withheld: int = 0
    remote: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class EnrollmentGeneration(SQLModel, table=True):
    """One row (id 1): bumped in the same transaction as every change to ``peers``' enrolled
    keys or endpoints, so a running node (any process, either engine) notices by polling it."""

    __tablename__ = "enrollment_generation"

    id: int = Field(default=1, primary_key=True)
    generation: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class VerificationProgress(SQLModel, table=True):
    """How far the background verifier got in one log's current pass (the tree it rebuilt up
    to *position*, as its frontier hashes), and the last size a whole pass verified."""

    __tablename__ = "verification_progress"

    log_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    position: int = Field(sa_column=Column(BigInteger, nullable=False))
    frontier: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    pass_started_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    verified_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    verified_at: dt.datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class VerificationFinding(SQLModel, table=True):
    """Something stored that does not verify: the log, the first bad index or row, and why.
    Kept until a later whole pass over that log finds it clean. Never holds a data value."""

    __tablename__ = "verification_findings"

    id: int | None = Field(default=None, primary_key=True)
    log_id: int = Field(index=True)
    kind: str = Field(max_length=40)
    idx: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    row: str = Field(max_length=200)
    detail: str = Field(max_length=500)
    found_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class WitnessedRecord(SQLModel, table=True):
    """The newest checkpoint this node cosigned for a peer's origin (tlog-witness state),
    with the note as the origin signed it and this node's cosignature of it. Updated by
    compare-and-swap on the size held, so two requests can never roll it back."""

    __tablename__ = "witnessed"

    origin: str = Field(primary_key=True, max_length=200)
    peer: str = Field(max_length=63)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    cosignature: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class CosignatureRecord(SQLModel, table=True):
    """A verified cosignature of a checkpoint body of some origin (this node's own logs, or a
    peer's it mirrors), by a peer (the cosigner's name)."""

    __tablename__ = "cosignatures"

    origin: str = Field(primary_key=True, max_length=200)
    body_sha256: str = Field(primary_key=True, max_length=64)
    cosigner: str = Field(primary_key=True, max_length=200)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    line: str = Field(sa_column=Column(Text, nullable=False))
    received_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class ActionFeedRecord(SQLModel, table=True):
    """A partner's actions log (issue 15) as this node verified it: the newest verified
    checkpoint and the tree's right edge at the size kept (its perfect-subtree hashes,
    largest first), so that the next pull is checked against both; ``state`` is ``tampered``
    once something it sent did not verify (only an operator clears it)."""

    __tablename__ = "action_feeds"

    peer: str = Field(primary_key=True, max_length=63)
    origin: str = Field(max_length=200)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    frontier: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    checkpoint_note: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    state: str = Field(max_length=20)
    state_detail: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class ActionRecordRow(SQLModel, table=True):
    """A verified response or hit a partner recorded about one of this node's entries (its
    leaf index in the partner's actions log, and the leaf's fields)."""

    __tablename__ = "action_records"

    peer: str = Field(primary_key=True, max_length=63)
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True))
    __table_args__ = (Index("ix_action_records_entry", "entry"),)

    kind: str = Field(max_length=10)
    entry: str = Field(max_length=64)
    measure: str = Field(max_length=32)
    action: str = Field(max_length=24)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    department: str = Field(max_length=18)
    date: str = Field(max_length=10)
    officer: str = Field(max_length=32)
    purpose: str = Field(max_length=40)
    matter: str = Field(sa_column=Column(Text, nullable=False))
    at_us: int = Field(sa_column=Column(BigInteger, nullable=False))


class MetricsSample(SQLModel, table=True):
    """One sampled value of the metrics history (issue 16): at *at*, for *peer*, the value of
    *series* (``lag_leaves``, ``lag_seconds``, or ``disclosures:FORM``, a cumulative count
    since the node started)."""

    __tablename__ = "metrics_history"

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    peer: str = Field(max_length=63)
    series: str = Field(max_length=40)
    value: float
