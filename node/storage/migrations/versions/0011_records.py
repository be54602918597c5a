"""Report data classes (issue 14): penalties, licences, evaluations and commitments are entries
of the same per-node feed as the lists (``ListEntry.record``), so they need no table of their
own; state rows carry the class as ``list_code``. An index finds a class's records of a log
(imports, removals, the report's ``active_records``).

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_list_state_code", "list_state", ["log_id", "list_code", "status"])


def downgrade() -> None:
    op.drop_index("ix_list_state_code", "list_state")
