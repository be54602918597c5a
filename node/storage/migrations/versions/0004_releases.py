"""The disclosure record (every response that let personal data out, and what decided it),
and an index for queries by pseudonym.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
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
    # A query by alliance pseudonym finds its entries without scanning every opening.
    op.create_index("ix_disclosures_field_value", "disclosures", ["field", "value"])


def downgrade() -> None:
    op.drop_index("ix_disclosures_field_value", "disclosures")
    op.drop_table("releases")
