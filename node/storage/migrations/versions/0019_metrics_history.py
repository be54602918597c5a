"""Metrics history (issue 16): what the running node sampled of its metrics every
``metrics_history_seconds``, per peer, so `status --html` can plot feed lag and disclosures
over time. One row per (time, peer, series); rows older than ``metrics_history_days`` are
pruned as new ones are written.

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metrics_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("peer", sa.String(63), nullable=False),
        sa.Column("series", sa.String(40), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("metrics_history")
