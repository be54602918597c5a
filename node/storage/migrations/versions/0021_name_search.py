"""Name search without a scan (issue 17).

* A trigram index over ``list_state.name_norm`` (the normalised subject name of migration 0020,
  the form name ranking compares): on SQLite an external-content FTS5 table
  (``tokenize='trigram'``) kept current by triggers, so no Python write path changes; on
  PostgreSQL a GIN index on ``cn_trigrams(name_norm)``, the same three-character runs as an
  array. Not pg_trgm: pg_trgm keeps only the characters its database's locale calls
  alphanumeric, and in a ``C``-locale database (the tests' cluster, ``initdb --no-locale``)
  that drops every Chinese character, leaving a name with no trigrams at all.
* A B-tree index on ``name_norm``: queries too short for a trigram (one or two characters)
  take a bounded prefix path instead.

Organisation-code resolution needs no index of its own: migration 0020's ``ix_list_state_org``
on ``(substr(uscc, 9, 9), uscc)`` serves it.

SQLAlchemy models cannot express the FTS table, the triggers or the function, so all of this
lives in the migration only (node/identity/name_search.py reads it).

Revision ID: 0021
Revises: 0020
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_INDEX = "INSERT INTO list_state_names(rowid, name_norm) VALUES (new.rowid, new.name_norm); "
_UNINDEX = (
    "INSERT INTO list_state_names(list_state_names, rowid, name_norm) "
    "VALUES ('delete', old.rowid, old.name_norm); "
)
_SQLITE_UP = (
    "CREATE VIRTUAL TABLE list_state_names USING fts5("
    "name_norm, content='list_state', content_rowid='rowid', tokenize='trigram')",
    # Triggers keep the index equal to the content table's column, whoever writes the row.
    f"CREATE TRIGGER list_state_names_ai AFTER INSERT ON list_state BEGIN {_INDEX}END",
    f"CREATE TRIGGER list_state_names_ad AFTER DELETE ON list_state BEGIN {_UNINDEX}END",
    # Only when the name changes: the upsert of every re-applied entry sets the column anyway.
    "CREATE TRIGGER list_state_names_au AFTER UPDATE OF name_norm ON list_state "
    f"WHEN old.name_norm IS NOT new.name_norm BEGIN {_UNINDEX}{_INDEX}END",
    "INSERT INTO list_state_names(list_state_names) VALUES ('rebuild')",
)
_SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS list_state_names_au",
    "DROP TRIGGER IF EXISTS list_state_names_ad",
    "DROP TRIGGER IF EXISTS list_state_names_ai",
    "DROP TABLE IF EXISTS list_state_names",
)

# lower() as FTS5's trigram tokenizer folds case (name_norm is case-folded already anyway);
# DISTINCT keeps the GIN entry small.
_PG_UP = (
    "CREATE FUNCTION cn_trigrams(t text) RETURNS text[] LANGUAGE sql IMMUTABLE STRICT "
    "PARALLEL SAFE AS $$ SELECT ARRAY(SELECT DISTINCT substr(lower(t), i, 3) "
    "FROM generate_series(1, length(t) - 2) AS i) $$",
    # A small pending list: every search reads all of it, and it is flushed when full.
    "CREATE INDEX ix_list_state_name_trigrams ON list_state USING gin (cn_trigrams(name_norm)) "
    "WITH (gin_pending_list_limit = 256)",
)
_PG_DOWN = (
    "DROP INDEX IF EXISTS ix_list_state_name_trigrams",
    "DROP FUNCTION IF EXISTS cn_trigrams(text)",
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for sql in _SQLITE_UP if sqlite else _PG_UP:
        op.execute(sql)
    op.create_index("ix_list_state_name_prefix", "list_state", ["name_norm"])


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.drop_index("ix_list_state_name_prefix", table_name="list_state")
    for sql in _SQLITE_DOWN if sqlite else _PG_DOWN:
        op.execute(sql)
