"""Witnessing and gossip (issue 13): the newest checkpoint this node cosigned per peer origin
(``witnessed``, tlog-witness state) and the verified cosignatures it holds of checkpoints
(``cosignatures``: its own logs' from peers, and those served with peers' checkpoints).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "witnessed",
        sa.Column("origin", sa.String(200), primary_key=True),
        sa.Column("peer", sa.String(63), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root", sa.LargeBinary, nullable=False),
        sa.Column("note", sa.LargeBinary, nullable=False),
        sa.Column("cosignature", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "cosignatures",
        sa.Column("origin", sa.String(200), primary_key=True),
        sa.Column("body_sha256", sa.String(64), primary_key=True),
        sa.Column("cosigner", sa.String(200), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("line", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cosignatures")
    op.drop_table("witnessed")
