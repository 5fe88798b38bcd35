"""An index of the exchanges whose personal data is still held, oldest first.

The retention purge asks for the oldest unerased exchanges that are due,
batch after batch; with this partial index it walks only unerased rows, in
order, and stops after a batch, instead of stepping over every exchange
erased before (a purge of n exchanges would otherwise read n^2/batch rows).

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-03

Frozen: written out in full rather than imported from tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNERASED = sa.text("erased_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_exchanges_unerased",
        "exchanges",
        ["created_at", "exchange_id"],
        sqlite_where=UNERASED,
        postgresql_where=UNERASED,
    )


def downgrade() -> None:
    op.drop_index("ix_exchanges_unerased", table_name="exchanges")
