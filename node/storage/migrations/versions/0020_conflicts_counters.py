"""Conflicts and counters without a scan (issue 17): ``list_state.name_norm`` (the normalised
subject name) and ``list_state.code_suspect`` (a peer's USCC that fails validation), indexed,
with ``conflict_candidates`` (USCCs and codes that have two names or two USCCs), so
`find_conflicts` reads the candidates' rows instead of every row; and ``list_counts``, the
active entries per (log, list, disclosure end) that `status` sums. Existing rows are backfilled
here with the same functions ``apply_leaves`` uses for new ones (node/feeds/counts.py).

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_BATCH = 2000


def upgrade() -> None:
    from node.feeds.counts import ACTIVE_STATUS, name_norm_of, suspect_code

    op.add_column("list_state", sa.Column("name_norm", sa.Text, nullable=True))
    op.add_column(
        "list_state",
        sa.Column("code_suspect", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.create_table(
        "list_counts",
        sa.Column("log_id", sa.Integer, primary_key=True),
        sa.Column("list_name", sa.String(200), primary_key=True),
        sa.Column("disclosure_end", sa.String(10), primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "conflict_candidates",
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("key", sa.String(18), primary_key=True),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT s.log_id, s.entry_id, s.subject_name, s.uscc, l.peer IS NOT NULL"
            " FROM list_state s JOIN logs l ON l.id = s.log_id"
            " WHERE s.subject_name != '' OR s.uscc != ''"
        )
    ).all()
    update = sa.text(
        "UPDATE list_state SET name_norm = :norm, code_suspect = :suspect"
        " WHERE log_id = :log_id AND entry_id = :entry_id"
    )
    params = [
        {
            "norm": name_norm_of(name),
            "suspect": int(bool(peer) and suspect_code(uscc)),
            "log_id": log_id,
            "entry_id": entry_id,
        }
        for log_id, entry_id, name, uscc, peer in rows
    ]
    for i in range(0, len(params), _BATCH):
        bind.execute(update, params[i : i + _BATCH])
    bind.execute(
        sa.text(
            "INSERT INTO list_counts (log_id, list_name, disclosure_end, n)"
            " SELECT log_id, list_name, disclosure_end, count(*) FROM list_state"
            " WHERE status = :active AND length(entry) > 0"
            " GROUP BY log_id, list_name, disclosure_end"
        ),
        {"active": ACTIVE_STATUS},
    )
    # Candidates, as apply_leaves and load_crosswalk would have recorded them (one pass here).
    for kind, query in (
        ("uscc", "SELECT uscc FROM list_state WHERE uscc != '' AND name_norm IS NOT NULL"
                 " GROUP BY uscc HAVING min(name_norm) != max(name_norm)"),
        ("code", "SELECT substr(uscc, 9, 9) FROM list_state WHERE uscc != ''"
                 " GROUP BY substr(uscc, 9, 9) HAVING min(uscc) != max(uscc)"),
        ("code", "SELECT legacy FROM crosswalk GROUP BY legacy HAVING min(uscc) != max(uscc)"),
        ("code", "SELECT DISTINCT c.legacy FROM crosswalk c JOIN list_state s"
                 " ON substr(s.uscc, 9, 9) = c.legacy WHERE s.uscc != ''"),
    ):  # fmt: skip
        keys = [{"kind": kind, "key": k} for (k,) in bind.execute(sa.text(query))]
        if keys:
            bind.execute(
                sa.text(
                    "INSERT INTO conflict_candidates (kind, key) VALUES (:kind, :key)"
                    " ON CONFLICT (kind, key) DO NOTHING"
                ),
                keys,
            )
    op.create_index("ix_list_state_name_norm", "list_state", ["uscc", "name_norm"])
    op.create_index("ix_list_state_org", "list_state", [sa.text("substr(uscc, 9, 9)"), "uscc"])
    op.create_index(
        "ix_list_state_suspect", "list_state", ["uscc"],
        sqlite_where=sa.text("code_suspect = 1"), postgresql_where=sa.text("code_suspect = 1"),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_list_state_suspect", "list_state")
    op.drop_index("ix_list_state_org", "list_state")
    op.drop_index("ix_list_state_name_norm", "list_state")
    op.drop_table("list_counts")
    op.drop_table("conflict_candidates")
    with op.batch_alter_table("list_state") as batch:
        batch.drop_column("code_suspect")
        batch.drop_column("name_norm")
