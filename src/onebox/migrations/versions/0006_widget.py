"""The website widget: widget conversations (key and anonymous visitor) and per-key widget
settings (appearance, retention, visitor limits).

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Native ADD COLUMN: a batch "recreate" would drop the conversations table, which
    # cascades to every message while foreign keys are on.
    op.add_column("conversations", sa.Column("widget_key_id", sa.String(36), nullable=True))
    op.add_column("conversations", sa.Column("visitor_id", sa.String(64), nullable=True))
    op.create_index(
        "ix_conversations_widget_visitor", "conversations", ["widget_key_id", "visitor_id"]
    )
    op.create_index(
        "ix_conversations_widget_updated", "conversations", ["widget_key_id", "updated_at"]
    )
    op.create_table(
        "widget_settings",
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("appearance", sa.JSON(), nullable=False),
        sa.Column("retain_conversations", sa.Boolean(), nullable=False),
        sa.Column("max_visitor_messages", sa.Integer(), nullable=False),
        sa.Column("visitor_requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("visitor_tokens_per_minute", sa.Integer(), nullable=True),
        sa.Column("visitor_tokens_per_day", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_widget_settings_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_widget_settings")),
    )


def downgrade() -> None:
    op.drop_table("widget_settings")
    op.drop_index("ix_conversations_widget_updated", table_name="conversations")
    op.drop_index("ix_conversations_widget_visitor", table_name="conversations")
    # Native DROP COLUMN (SQLite 3.35+), for the same reason.
    op.execute("ALTER TABLE conversations DROP COLUMN visitor_id")
    op.execute("ALTER TABLE conversations DROP COLUMN widget_key_id")
