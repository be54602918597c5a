"""Entry bodies travel beside the leaf: the body's salt and list code per entry state, and an
index to find the state of a leaf by its index (bodies and openings are served per leaf).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("list_state") as batch:
        batch.add_column(sa.Column("list_code", sa.String(40), nullable=False, server_default=""))
        batch.add_column(sa.Column("body_salt", sa.LargeBinary, nullable=True))
    op.create_index("ix_list_state_last_idx", "list_state", ["log_id", "last_idx"])


def downgrade() -> None:
    op.drop_index("ix_list_state_last_idx", "list_state")
    with op.batch_alter_table("list_state") as batch:
        batch.drop_column("body_salt")
        batch.drop_column("list_code")
