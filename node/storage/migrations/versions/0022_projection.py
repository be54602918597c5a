"""The log is the truth; the rest is a projection (issue 17). ``logs.projected_size``: the
size of the log its list state, openings and counters are folded up to (advanced in the same
transaction as the rows it folds). ``leaf_openings``: what opens a mirrored leaf (its body and
disclosed fields, a serialized ``FeedLeaf`` without its entry), kept in the same transaction
as the leaf until the projection folds it. Existing logs were applied atomically with their
leaves: their projection is complete.

Revision ID: 0022
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("logs") as batch:
        batch.add_column(
            sa.Column("projected_size", sa.BigInteger, nullable=False, server_default="0")
        )
    op.execute("UPDATE logs SET projected_size = size")
    op.create_table(
        "leaf_openings",
        sa.Column("log_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("openings", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leaf_openings")
    with op.batch_alter_table("logs") as batch:
        batch.drop_column("projected_size")
