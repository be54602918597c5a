"""List feeds: Merkle logs, leaves, stored hashes, checkpoints, openings, mirror state,
import bookkeeping, quarantine and fork evidence.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Clustered on the primary key in SQLite (ignored elsewhere): leaves and hashes are read by range.
_CLUSTERED = {"sqlite_with_rowid": False}


def _now() -> sa.TextClause:
    return sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "logs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("origin", sa.String(200), nullable=False, unique=True),
        sa.Column("peer", sa.String(63), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("checkpoint_note", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="ok"),
        sa.Column("state_detail", sa.String(500), nullable=False, server_default=""),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    )
    op.create_table(
        "log_leaves",
        sa.Column("log_id", sa.Integer(), primary_key=True),
        sa.Column("idx", sa.BigInteger(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        **_CLUSTERED,
    )
    op.create_table(
        "log_hashes",
        sa.Column("log_id", sa.Integer(), primary_key=True),
        sa.Column("idx", sa.BigInteger(), primary_key=True),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        **_CLUSTERED,
    )
    op.create_table(
        "checkpoints",
        sa.Column("log_id", sa.Integer(), primary_key=True),
        sa.Column("size", sa.BigInteger(), primary_key=True),
        sa.Column("note", sa.LargeBinary(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        **_CLUSTERED,
    )
    op.create_table(
        "disclosures",
        sa.Column("log_id", sa.Integer(), primary_key=True),
        sa.Column("idx", sa.BigInteger(), primary_key=True),
        sa.Column("field", sa.String(40), primary_key=True),
        sa.Column("entry_id", sa.String(64), nullable=False),
        sa.Column("salt", sa.LargeBinary(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_index("ix_disclosures_entry", "disclosures", ["log_id", "entry_id"])
    op.create_table(
        "list_state",
        sa.Column("log_id", sa.Integer(), primary_key=True),
        sa.Column("entry_id", sa.String(64), primary_key=True),
        sa.Column("list_name", sa.String(200), nullable=False),
        sa.Column("list_type", sa.Integer(), nullable=False),
        sa.Column("subject_type", sa.Integer(), nullable=False),
        sa.Column("subject_name", sa.String(300), nullable=False),
        sa.Column("uscc", sa.String(18), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("removal_reason", sa.Integer(), nullable=False),
        sa.Column("listing_date", sa.String(10), nullable=False),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("disclosure_end", sa.String(10), nullable=False),
        sa.Column("last_idx", sa.BigInteger(), nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_list_state_uscc", "list_state", ["uscc"])
    op.create_index("ix_list_state_list", "list_state", ["log_id", "list_name"])
    op.create_table(
        "own_entries",
        sa.Column("list_name", sa.String(200), primary_key=True),
        sa.Column("natural_key", sa.String(64), primary_key=True),
        sa.Column("entry_id", sa.String(64), nullable=False, unique=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "imports",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("list_name", sa.String(200), nullable=False),
        sa.Column("file", sa.String(1000), nullable=False),
        sa.Column("encoding", sa.String(20), nullable=False),
        *(
            sa.Column(c, sa.Integer(), nullable=False, server_default="0")
            for c in ("read", "added", "updated", "removed", "unchanged", "quarantined")
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("import_id", sa.Integer(), nullable=False, index=True),
        sa.Column("file", sa.String(1000), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("column", sa.String(40), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
    )
    op.create_table(
        "feed_evidence",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("log_id", sa.Integer(), nullable=False, index=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("earlier_note", sa.LargeBinary(), nullable=False),
        sa.Column("later_note", sa.LargeBinary(), nullable=False),
        sa.Column("proof", sa.LargeBinary(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    )


def downgrade() -> None:
    for table in (
        "feed_evidence",
        "quarantine",
        "imports",
        "own_entries",
        "list_state",
        "disclosures",
        "checkpoints",
        "log_hashes",
        "log_leaves",
        "logs",
    ):
        op.drop_table(table)
