"""Crosswalk of legacy identifiers (registration numbers, organisation codes) to USCCs.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crosswalk",
        sa.Column("legacy", sa.String(18), primary_key=True),
        sa.Column("uscc", sa.String(18), primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column(
            "loaded_at", sa.DateTime(timezone=True), nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        ),
    )  # fmt: skip
    op.create_index("ix_crosswalk_uscc", "crosswalk", ["uscc"])


def downgrade() -> None:
    op.drop_table("crosswalk")
