"""Objections (issue 15): the objections this node raised to peers' entries (side "raised")
and those raised to its own entries (side "received"), with their history as JSON.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "objections",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("origin", sa.String(200), nullable=False),
        sa.Column("entry_id", sa.String(64), nullable=False),
        sa.Column("grounds", sa.String(24), nullable=False),
        sa.Column("evidence_sha256", sa.String(64), nullable=False),
        sa.Column("due", sa.String(10), nullable=False),
        sa.Column("raised_by", sa.String(63), nullable=False),
        sa.Column("officer", sa.String(32), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        # Every transition, oldest first (node.objections.wire.history_json).
        sa.Column("history", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_objections_entry", "objections", ["origin", "entry_id"])
    op.create_index("ix_objections_raised_by", "objections", ["raised_by"])


def downgrade() -> None:
    op.drop_index("ix_objections_raised_by", table_name="objections")
    op.drop_index("ix_objections_entry", table_name="objections")
    op.drop_table("objections")
