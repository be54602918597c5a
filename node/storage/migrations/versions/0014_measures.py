"""Measures catalogues (issue 15): the documents of every measures catalogue this node's
entries were checked by (its own, kept at import) or its partners' entries cite (fetched and
verified by digest), content-addressed by their SHA-256.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "measures_catalogues",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("label", sa.String(400), nullable=False),
        # The packed documents (node.feeds.measures.pack_documents): SHA-256 gives the key.
        sa.Column("documents", sa.LargeBinary, nullable=False),
        # "" for this node's own catalogue; else the peer it was fetched from.
        sa.Column("fetched_from", sa.String(63), nullable=False),
        sa.Column("kept_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("measures_catalogues")
