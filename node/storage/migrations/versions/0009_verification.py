"""Stored-data verification (issue 13): how far the background verifier got in each log, and
what it (or ``creditnode verify``) found there, so ``status`` and a restarted node see it.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verification_progress",
        sa.Column("log_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("frontier", sa.LargeBinary, nullable=False),
        sa.Column("pass_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_size", sa.BigInteger, nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "verification_findings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("log_id", sa.Integer, nullable=False, index=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=True),
        sa.Column("row", sa.String(200), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("verification_findings")
    op.drop_table("verification_progress")
