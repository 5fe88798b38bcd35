"""Initial schema: exchanges, messages, outbox, envelopes_in, deliveries, tracking.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Frozen: written out in full rather than imported from tables.py, so that later
changes to tables.py cannot change what this revision creates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "exchanges",
        sa.Column("exchange_id", sa.String(200), nullable=False),
        sa.Column("requester_authority", sa.String(64), nullable=False),
        sa.Column("responder_authority", sa.String(64), nullable=False),
        sa.Column("requester_node", sa.String(64), nullable=False),
        sa.Column("responder_node", sa.String(64), nullable=False),
        sa.Column("area", sa.String(64), nullable=False),
        sa.Column("question_set", sa.String(64), nullable=False),
        sa.Column("catalogue_version", sa.String(64), nullable=False),
        sa.Column("state", sa.String(64), nullable=False),
        _ts("created_at", False),
        _ts("updated_at", False),
        _ts("closed_at", True),
        sa.Column("wrapped_data_key", sa.LargeBinary(), nullable=True),
        _ts("erased_at", True),
        sa.PrimaryKeyConstraint("exchange_id", name="pk_exchanges"),
    )
    op.create_index("ix_exchanges_state_updated_at", "exchanges", ["state", "updated_at"])
    op.create_index("ix_exchanges_closed_at", "exchanges", ["closed_at"])
    op.create_index("ix_exchanges_created_at", "exchanges", ["created_at"])

    op.create_table(
        "messages",
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("exchange_id", sa.String(200), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("document_type", sa.String(64), nullable=False),
        sa.Column("sender_authority", sa.String(64), nullable=False),
        sa.Column("receiver_authority", sa.String(64), nullable=False),
        sa.Column("peer_node", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        _ts("document_created_at", False),
        _ts("stored_at", False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("receipt", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("message_id", name="pk_messages"),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["exchanges.exchange_id"],
            name="fk_messages_exchange_id_exchanges",
        ),
        sa.CheckConstraint("direction IN ('in', 'out')", name="ck_messages_direction"),
    )
    op.create_index("ix_messages_exchange_id", "messages", ["exchange_id"])

    op.create_table(
        "outbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("peer_node", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("created_at", False),
        _ts("next_attempt_at", False),
        _ts("lease_until", True),
        sa.Column("last_error", sa.String(64), nullable=True),
        sa.Column("dead_reason", sa.String(64), nullable=True),
        _ts("sent_at", True),
        sa.Column("peer_receipt_sha256", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.message_id"], name="fk_outbox_message_id_messages"
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'inflight', 'sent', 'dead')", name="ck_outbox_state"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_outbox_peer_node_state_next_attempt_at_id",
        "outbox",
        ["peer_node", "state", "next_attempt_at", "id"],
    )
    op.create_index("ix_outbox_message_id", "outbox", ["message_id"])

    op.create_table(
        "envelopes_in",
        sa.Column("envelope_id", sa.String(200), nullable=False),
        sa.Column("peer_node", sa.String(64), nullable=False),
        _ts("received_at", False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("receipt", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("envelope_id", name="pk_envelopes_in"),
    )
    op.create_index("ix_envelopes_in_received_at", "envelopes_in", ["received_at"])

    op.create_table(
        "deliveries",
        sa.Column("seq", BigId, autoincrement=True, nullable=False),
        sa.Column("authority_id", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        _ts("created_at", False),
        _ts("delivered_at", True),
        sa.Column("push_state", sa.String(16), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at", True),
        _ts("lease_until", True),
        sa.Column("last_error", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_deliveries"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.message_id"], name="fk_deliveries_message_id_messages"
        ),
        sa.CheckConstraint(
            "push_state IS NULL OR push_state IN ('pending', 'inflight', 'sent', 'dead')",
            name="ck_deliveries_push_state",
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_deliveries_authority_id_seq", "deliveries", ["authority_id", "seq"])
    op.create_index(
        "ix_deliveries_authority_id_push_state_next_attempt_at",
        "deliveries",
        ["authority_id", "push_state", "next_attempt_at"],
    )
    op.create_index("ix_deliveries_message_id", "deliveries", ["message_id"])

    op.create_table(
        "tracking",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("exchange_id", sa.String(200), nullable=False),
        sa.Column("stage", sa.String(64), nullable=False),
        _ts("at", False),
        sa.Column("message_id", sa.String(200), nullable=True),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("detail", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tracking"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_tracking_exchange_id_id", "tracking", ["exchange_id", "id"])


def downgrade() -> None:
    for table in ("tracking", "deliveries", "envelopes_in", "outbox", "messages", "exchanges"):
        op.drop_table(table)
