"""Drop ``ix_list_state_uscc`` (issue 17): ``ix_list_state_name_norm`` (uscc, name_norm) begins
with the same column, so it serves every read by USCC, and every row the projection writes
paid for one more index on a random key.

Revision ID: 0026
Revises: 0025
"""

from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_list_state_uscc", "list_state")


def downgrade() -> None:
    op.create_index("ix_list_state_uscc", "list_state", ["uscc"])
