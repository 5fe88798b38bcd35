"""exchange_keys: the wrapped data keys in a small table of their own; an index of unerased exchanges.

* Erasure deletes an exchange's row of ``exchange_keys`` instead of
  overwriting a column of ``exchanges``. The compaction after a purge then
  rewrites only this small table (the keys of the exchanges whose personal
  data is still held), never the table of exchange metadata, which is kept
  forever and grows without bound.
* The retention purge asks for the oldest unerased exchanges that are due,
  batch after batch; with the partial index ``ix_exchanges_unerased`` it
  walks only unerased rows, in order, and stops after a batch, instead of
  stepping over every exchange erased before.

Revision ID: 0008
Revises: 0010
Create Date: 2026-12-03

Frozen: written out in full rather than imported from tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNERASED = sa.text("erased_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "exchange_keys",
        sa.Column("exchange_id", sa.String(200), nullable=False),
        sa.Column("wrapped_data_key", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["exchanges.exchange_id"],
            name="fk_exchange_keys_exchange_id_exchanges",
        ),
        sa.PrimaryKeyConstraint("exchange_id", name="pk_exchange_keys"),
    )
    op.execute(
        "INSERT INTO exchange_keys (exchange_id, wrapped_data_key) "
        "SELECT exchange_id, wrapped_data_key FROM exchanges WHERE wrapped_data_key IS NOT NULL"
    )
    # SQLite (3.35+) drops a plain column in place: no copy of the table, so the
    # messages' foreign keys to it stay untouched.
    op.execute("ALTER TABLE exchanges DROP COLUMN wrapped_data_key")
    op.create_index(
        "ix_exchanges_unerased",
        "exchanges",
        ["created_at", "exchange_id"],
        sqlite_where=UNERASED,
        postgresql_where=UNERASED,
    )


def downgrade() -> None:
    op.drop_index("ix_exchanges_unerased", table_name="exchanges")
    op.add_column("exchanges", sa.Column("wrapped_data_key", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE exchanges SET wrapped_data_key = (SELECT k.wrapped_data_key FROM exchange_keys k "
        "WHERE k.exchange_id = exchanges.exchange_id)"
    )
    op.drop_table("exchange_keys")
