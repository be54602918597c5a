"""Statistics (issue 15): each import records how many subject USCCs it checked, how many
failed validation and how many passed only leniently (the pre-2016 check-character defect),
so that the 重错码 rate can be counted per period.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_COUNTERS = ("uscc_checked", "uscc_invalid", "uscc_lenient")


def upgrade() -> None:
    # Imports made before this migration checked codes too but did not count them: 0.
    with op.batch_alter_table("imports") as batch:
        for name in _COUNTERS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("imports") as batch:
        for name in reversed(_COUNTERS):
            batch.drop_column(name)
