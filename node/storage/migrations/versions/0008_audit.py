"""Audit log (issue 13): the index of the node's audit log, and the end of ``releases``.

The audit log itself is a Merkle log in ``logs`` / ``log_leaves`` / ``log_hashes`` (origin
``<node uri>/audit``); ``audit_entries`` holds one row per leaf, parsed, so that entries can be
filtered by time, peer, officer, purpose, subject and outcome. Every row can be re-derived
from its leaf (``verify_audit_log`` checks that they agree).

The disclosure record ``releases`` folds into the audit log: a disclosure is an audit entry
with ``values`` > 0, its agreement versions and field forms. Rows of ``releases`` from before
this migration are not Merkle leaves and cannot become evidence; they are dropped.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("exchange", sa.String(36), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("peer", sa.String(63), nullable=False),
        sa.Column("method", sa.String(200), nullable=False),
        sa.Column("officer", sa.String(32), nullable=False),
        sa.Column("department", sa.String(18), nullable=False),
        sa.Column("purpose", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("response", sa.String(64), nullable=False),
        sa.Column("values", sa.Integer, nullable=False),
        sa.Column("withheld", sa.Integer, nullable=False),
        sa.Column("remote", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("exchange", "direction", "seq", name="uq_audit_exchange"),
    )  # fmt: skip
    op.create_index("ix_audit_at", "audit_entries", ["at"])
    op.create_index("ix_audit_peer_at", "audit_entries", ["peer", "at"])
    op.create_index("ix_audit_officer_at", "audit_entries", ["officer", "at"])
    op.create_index("ix_audit_subject", "audit_entries", ["subject"])
    op.drop_index("ix_releases_peer", "releases")
    op.drop_table("releases")


def downgrade() -> None:
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("peer", sa.String(63), nullable=False),
        sa.Column("method", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(40), nullable=False),
        sa.Column("agreements", sa.String(500), nullable=False),
        sa.Column("forms", sa.String(1000), nullable=False),
        sa.Column("values", sa.Integer, nullable=False),
        sa.Column("withheld", sa.Integer, nullable=False),
        sa.Column("first_leaf", sa.BigInteger, nullable=True),
        sa.Column("last_leaf", sa.BigInteger, nullable=True),
    )  # fmt: skip
    op.create_index("ix_releases_peer", "releases", ["peer", "released_at"])
    op.drop_index("ix_audit_subject", "audit_entries")
    op.drop_index("ix_audit_officer_at", "audit_entries")
    op.drop_index("ix_audit_peer_at", "audit_entries")
    op.drop_index("ix_audit_at", "audit_entries")
    op.drop_table("audit_entries")
