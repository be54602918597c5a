"""Responses and feedback (issue 15): each partner's actions log as this node verified it
(``action_feeds``: the newest verified checkpoint and the tree's right edge) and the verified
responses and hits partners recorded about this node's own entries (``action_records``). The
node's own actions log is a log like the audit log (``logs``, origin ``<uri>/actions``).

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "action_feeds",
        sa.Column("peer", sa.String(63), primary_key=True),
        sa.Column("origin", sa.String(200), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root", sa.LargeBinary, nullable=False),
        sa.Column("frontier", sa.LargeBinary, nullable=False),
        sa.Column("checkpoint_note", sa.LargeBinary, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("state_detail", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "action_records",
        sa.Column("peer", sa.String(63), primary_key=True),
        sa.Column("idx", sa.BigInteger, primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("entry", sa.String(64), nullable=False),
        sa.Column("measure", sa.String(32), nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("department", sa.String(18), nullable=False),
        sa.Column("date", sa.String(10), nullable=False),
        sa.Column("officer", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(40), nullable=False),
        sa.Column("matter", sa.Text, nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_action_records_entry", "action_records", ["entry"])


def downgrade() -> None:
    op.drop_index("ix_action_records_entry", table_name="action_records")
    op.drop_table("action_records")
    op.drop_table("action_feeds")
