"""Signed audit checkpoints, the checkpoints peers hold of each other, and their conflicts.

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-04

Frozen: written out in full rather than imported from tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_signed_checkpoints",
        sa.Column("size", BigId, autoincrement=False, nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signed", sa.LargeBinary(), nullable=False),
        sa.Column("tsa_token", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("size", name="pk_audit_signed_checkpoints"),
    )
    op.create_table(
        "audit_peer_checkpoints",
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("size", BigId, autoincrement=False, nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signed", sa.LargeBinary(), nullable=False),
        sa.Column("tsa_token", sa.LargeBinary(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("peer", "size", name="pk_audit_peer_checkpoints"),
    )
    op.create_table(
        "audit_peer_conflicts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("held_size", BigId, nullable=False),
        sa.Column("offered_size", BigId, nullable=False),
        sa.Column("offered_root", sa.String(64), nullable=False),
        sa.Column("signed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_peer_conflicts"),
    )
    op.create_index("ix_audit_peer_conflicts_peer_id", "audit_peer_conflicts", ["peer", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_peer_conflicts_peer_id", table_name="audit_peer_conflicts")
    op.drop_table("audit_peer_conflicts")
    op.drop_table("audit_peer_checkpoints")
    op.drop_table("audit_signed_checkpoints")
