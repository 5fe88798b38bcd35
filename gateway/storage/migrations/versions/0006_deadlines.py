"""Deadlines and dispute metadata on exchanges (no personal data).

acceptance_due_at, reply_due_at, reply_date_agreed: the deadlines derived
from the signed Request and Acceptance (gateway.core.deadlines);
accepted_at, answered_at, disputed_at: the first such document's creation
time (the performance figures read them); resumes_to: the state a disputed
exchange returns to when its dispute is settled.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

Frozen: written out in full rather than imported from tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMES = (
    "acceptance_due_at",
    "reply_due_at",
    "accepted_at",
    "answered_at",
    "disputed_at",
)


def upgrade() -> None:
    for name in _TIMES:
        op.add_column("exchanges", sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.add_column("exchanges", sa.Column("reply_date_agreed", sa.Boolean(), nullable=True))
    op.add_column("exchanges", sa.Column("resumes_to", sa.String(64), nullable=True))
    op.create_index("ix_exchanges_requester_node_state", "exchanges", ["requester_node", "state"])


def downgrade() -> None:
    op.drop_index("ix_exchanges_requester_node_state", table_name="exchanges")
    with op.batch_alter_table("exchanges") as batch:
        batch.drop_column("resumes_to")
        batch.drop_column("reply_date_agreed")
        for name in reversed(_TIMES):
            batch.drop_column(name)
