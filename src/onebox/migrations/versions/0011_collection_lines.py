"""Per-collection counts of documents per short text line, for boilerplate removal before
chunking (documents/ingestion/boilerplate.py).

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "collection_lines",
        sa.Column("collection_id", sa.String(36), nullable=False),
        sa.Column("fingerprint", sa.String(16), nullable=False),
        sa.Column("documents", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["collection_id"], ["collections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("collection_id", "fingerprint"),
    )
    op.create_index("ix_collection_lines_count", "collection_lines", ["collection_id", "documents"])


def downgrade() -> None:
    op.drop_index("ix_collection_lines_count", table_name="collection_lines")
    op.drop_table("collection_lines")
