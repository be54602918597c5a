"""Follow-up (issue 15): when each of this node's entries was published, so a partner's
response deadline runs from the day it could receive the entry, not from its listing date.

``entry_published`` holds, per own entry, the index of its ADD leaf and the signed time of the
first checkpoint covering it (NULL for a checkpoint without a time line); ``published_scans``
how far the log has been read for them (node/actions/published.py fills both).

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entry_published",
        sa.Column("log_id", sa.Integer, primary_key=True),
        sa.Column("entry_id", sa.String(64), primary_key=True),
        sa.Column("add_idx", sa.BigInteger, nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "published_scans",
        sa.Column("log_id", sa.Integer, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("published_scans")
    op.drop_table("entry_published")
