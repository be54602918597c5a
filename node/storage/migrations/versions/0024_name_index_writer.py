"""The name index's inserts move from a trigger to the list state's writer (issue 17).

Migration 0021 kept the SQLite FTS5 index current by triggers. Its insert trigger ran once per
new ``list_state`` row, a trigger program per row; ``node.feeds.state.apply_leaves`` now adds a
batch's new rows to the index in one ``INSERT … SELECT`` after inserting them
(``node.identity.name_search.index_inserted``), in the same transaction. Measured on 100,000
rows of a mirror's fold, 4,096 per transaction, all indexes: 30.8 µs a row with the trigger,
15.3 µs without it. The update and delete triggers stay: those are rare, and every
other writer (an evidence clear, a removal) keeps the index right without knowing of it.

PostgreSQL's GIN index is maintained by the server: nothing changes there.

Revision ID: 0024
Revises: 0023
"""

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS list_state_names_ai")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TRIGGER list_state_names_ai AFTER INSERT ON list_state BEGIN "
            "INSERT INTO list_state_names(rowid, name_norm) VALUES (new.rowid, new.name_norm); END"
        )
        op.execute("INSERT INTO list_state_names(list_state_names) VALUES ('rebuild')")
