"""An index on messages (document_type, document_created_at) for the performance figures.

gateway.storage.kpi finds the Requests created in a period (their signed
creation time) with a range scan of this index.

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-12

Frozen: written out in full rather than imported from tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_messages_document_type_document_created_at"


def upgrade() -> None:
    op.create_index(_INDEX, "messages", ["document_type", "document_created_at"])


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="messages")
