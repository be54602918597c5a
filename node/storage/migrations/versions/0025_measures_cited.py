"""The measures catalogues each log's bodies cite, kept as the projection writes them (issue 17).

Every sync asked for the catalogues its held bodies cite and did not hold by reading and
parsing every body of the log: a no-op ``creditnode sync`` took 3.3 s at 1M entries, 26 s at
10M, most of it that scan. ``measures_cited`` holds (log, digest) pairs, added to by
``node.feeds.state.apply_leaves`` in the transaction that writes the bodies; a sync reads it.
Existing bodies are read once here, with the same function the scan used.

Revision ID: 0025
Revises: 0024
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from node.feeds.measures_store import cited_by

    op.create_table(
        "measures_cited",
        sa.Column("log_id", sa.Integer, primary_key=True),
        sa.Column("sha256", sa.String(64), primary_key=True),
    )
    bind = op.get_bind()
    found: set[tuple[int, str]] = set()
    result = bind.execute(
        sa.text("SELECT log_id, entry FROM list_state WHERE length(entry) > 0"),
        execution_options={"stream_results": True},
    )
    for part in result.partitions(5000):
        found.update((int(log_id), d) for log_id, body in part if (d := cited_by(bytes(body))))
    if found:
        bind.execute(
            sa.text("INSERT INTO measures_cited (log_id, sha256) VALUES (:log_id, :sha256)"),
            [{"log_id": log_id, "sha256": d} for log_id, d in sorted(found)],
        )


def downgrade() -> None:
    op.drop_table("measures_cited")
