"""Enrolled peers.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "peers",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("federation", sa.String(63), nullable=False),
        sa.Column("region", sa.String(6), nullable=False),
        sa.Column("endpoint", sa.String(300), nullable=False),
        sa.Column("ca_certificate", sa.Text(), nullable=False),
        sa.Column("tls_certificate", sa.Text(), nullable=False),
        sa.Column("feed_key", sa.String(300), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="unknown"),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=False, server_default=""),
        sa.Column("software_version", sa.String(40), nullable=False, server_default=""),
        sa.Column("protocol_version", sa.String(10), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("peers")
