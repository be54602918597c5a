"""Officer credentials (issue 14): who holds a certificate for the officer listener, and a
generation bumped with every issue or revocation, so a running node notices within moments.

The name is stored for the operator's `officer list` only; everything else (audit, logs,
certificates) carries the random officer id.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "officers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("department", sa.String(18), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        # The purposes the officer may check for, comma-separated (from the alliance catalogue).
        sa.Column("purposes", sa.String(400), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    table = op.create_table(
        "officer_generation",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(table, [{"id": 1, "generation": 0}])


def downgrade() -> None:
    op.drop_table("officer_generation")
    op.drop_table("officers")
