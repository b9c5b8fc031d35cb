"""Conversation search (titles and message text) and where a conversation's title came from.

SQLite: FTS5 external-content tables over ``messages.content`` and ``conversations.title``,
kept in sync by triggers. PostgreSQL: generated ``tsvector`` columns with GIN indexes. Both
are filled from the existing rows here.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

# ruff: noqa: S608  (the names are this module's constants, not input)

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, FTS5 table) pairs; the names match onebox.chat.search.
_INDEXED = (
    ("messages", "content", "messages_fts"),
    ("conversations", "title", "conversations_fts"),
)


def _sqlite_upgrade() -> None:
    for table, column, fts in _INDEXED:
        op.execute(
            f"CREATE VIRTUAL TABLE {fts} USING fts5("
            f"{column}, content='{table}', content_rowid='rowid', tokenize='unicode61')"
        )
        # External content: the index holds no copy of the text, so every change to the
        # column must be mirrored (a delete needs the old values exactly).
        op.execute(
            f"CREATE TRIGGER {fts}_ai AFTER INSERT ON {table} BEGIN "
            f"INSERT INTO {fts}(rowid, {column}) VALUES (new.rowid, new.{column}); END"
        )
        op.execute(
            f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {table} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, {column}) "
            f"VALUES ('delete', old.rowid, old.{column}); END"
        )
        op.execute(
            f"CREATE TRIGGER {fts}_au AFTER UPDATE OF {column} ON {table} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, {column}) "
            f"VALUES ('delete', old.rowid, old.{column}); "
            f"INSERT INTO {fts}(rowid, {column}) VALUES (new.rowid, new.{column}); END"
        )
        op.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")  # the existing rows


def _sqlite_downgrade() -> None:
    for _table, _column, fts in _INDEXED:
        for suffix in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS {fts}_{suffix}")
        op.execute(f"DROP TABLE IF EXISTS {fts}")


def _postgres_upgrade() -> None:
    for table, column, _fts in _INDEXED:
        # Generated: PostgreSQL keeps it current on every insert and update, and computes
        # it for the existing rows while adding it.
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
            f"(to_tsvector('simple'::regconfig, coalesce({column}, ''))) STORED"
        )
        op.execute(f"CREATE INDEX ix_{table}_search ON {table} USING gin (search_vector)")


def _postgres_downgrade() -> None:
    for table, _column, _fts in _INDEXED:
        op.execute(f"DROP INDEX IF EXISTS ix_{table}_search")
        op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS search_vector")


def upgrade() -> None:
    # "auto": the first line of the first message (the model may replace it);
    # "model": written by the model; "user": set by the user, never overwritten.
    op.add_column(
        "conversations",
        sa.Column("title_source", sa.String(16), nullable=False, server_default="auto"),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_upgrade()
    else:
        _sqlite_upgrade()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgres_downgrade()
    else:
        _sqlite_downgrade()
    # Native DROP COLUMN (SQLite 3.35+): a batch "recreate" would cascade to the messages.
    op.execute("ALTER TABLE conversations DROP COLUMN title_source")
