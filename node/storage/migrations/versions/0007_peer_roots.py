"""Peers' pinned roots of trust (issue 12): every version of an enrolled peer's root metadata
this node verified, exactly as signed (v1 from the peer's bundle at ``peer add``, later
versions fetched with ``NodeService.GetRoot`` and verified by ``TrustedRoot``), and on the
peer's record the SHA-256 of the pinned v1, so that a re-pin counts as a key change.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "peer_roots",
        sa.Column("peer", sa.String(63), primary_key=True),
        sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    with op.batch_alter_table("peers") as batch:
        batch.add_column(
            sa.Column("root_v1_sha256", sa.String(64), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("peers") as batch:
        batch.drop_column("root_v1_sha256")
    op.drop_table("peer_roots")
