"""The database schema as SQLAlchemy Core tables (no ORM), and the UTC timestamp type.

This module describes the schema that the Alembic migrations in
``gateway/storage/migrations/versions`` create; a test checks that the two
agree on SQLite and PostgreSQL. Change the schema by changing this file AND
adding a migration (see docs/storage.md), never one without the other.

Personal data lives only in ``messages.body`` (sealed with the exchange's data
key, wrapped in ``exchange_keys``, see ``gateway.core.dataprotect``); every other column is metadata: ids,
authority and node ids, codes, digests and times.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    TypeDecorator,
    text,
)

# Constraint names are fixed so that later migrations (SQLite batch mode
# included) can address them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC ``datetime`` on every backend.

    Binding a naive datetime is a bug and raises ``ValueError``. PostgreSQL
    stores ``timestamptz``; SQLite stores naive UTC text in SQLAlchemy's fixed
    width format (so string comparison orders correctly). Values read back are
    always aware and in UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]  # the driver hands a datetime
        return value.astimezone(UTC)  # type: ignore[no-any-return]  # the driver hands a datetime


# SQLite only autoincrements an "INTEGER PRIMARY KEY"; elsewhere use 64 bits.
BigId = BigInteger().with_variant(Integer(), "sqlite")

ID = 200  # ids: message, exchange, envelope ids (protocol caps them lower)
ACTOR = 64  # authority and node ids
CODE = 64  # states, stages, error codes, document types
SHA256_HEX = 64

exchanges = Table(
    "exchanges",
    metadata,
    Column("exchange_id", String(ID), primary_key=True),
    Column("requester_authority", String(ACTOR), nullable=False),
    Column("responder_authority", String(ACTOR), nullable=False),
    Column("requester_node", String(ACTOR), nullable=False),
    Column("responder_node", String(ACTOR), nullable=False),
    Column("area", String(CODE), nullable=False),
    Column("question_set", String(CODE), nullable=False),
    Column("catalogue_version", String(CODE), nullable=False),
    Column("state", String(CODE), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("closed_at", UTCDateTime(), nullable=True),
    Column("erased_at", UTCDateTime(), nullable=True),
    # The optional blocked stage of retention: personal data held but unreadable from then on.
    Column("blocked_at", UTCDateTime(), nullable=True),
    # Deadlines and milestones from the signed documents (gateway.core.deadlines).
    Column("acceptance_due_at", UTCDateTime(), nullable=True),
    Column("reply_due_at", UTCDateTime(), nullable=True),
    Column("accepted_at", UTCDateTime(), nullable=True),
    Column("answered_at", UTCDateTime(), nullable=True),
    Column("disputed_at", UTCDateTime(), nullable=True),
    Column("reply_date_agreed", Boolean(), nullable=True),
    # The state a disputed exchange returns to when the dispute is settled.
    Column("resumes_to", String(CODE), nullable=True),
    Index(None, "state", "updated_at"),
    Index(None, "closed_at"),
    Index(None, "created_at"),
    Index(None, "requester_node", "state"),
    # The retention purge walks the unerased exchanges oldest first (migration 0008).
    Index(
        "ix_exchanges_unerased",
        "created_at",
        "exchange_id",
        sqlite_where=text("erased_at IS NULL"),
        postgresql_where=text("erased_at IS NULL"),
    ),
)

# The AES-GCM-wrapped data key (gateway.core.dataprotect) of each exchange whose personal
# data is held; erasure deletes the row. A table of its own (migration 0008), so that the
# compaction after a purge rewrites only these short rows, never the exchange metadata.
exchange_keys = Table(
    "exchange_keys",
    metadata,
    Column("exchange_id", String(ID), ForeignKey("exchanges.exchange_id"), primary_key=True),
    Column("wrapped_data_key", LargeBinary(), nullable=False),
)

DIRECTIONS = ("in", "out")

messages = Table(
    "messages",
    metadata,
    # The document id: unique forever (replay protection), kept after erasure.
    Column("message_id", String(ID), primary_key=True),
    Column(
        "exchange_id",
        String(ID),
        ForeignKey("exchanges.exchange_id"),
        nullable=False,
    ),
    Column("direction", String(3), nullable=False),
    Column("document_type", String(CODE), nullable=False),
    Column("sender_authority", String(ACTOR), nullable=False),
    Column("receiver_authority", String(ACTOR), nullable=False),
    Column("peer_node", String(ACTOR), nullable=False),
    # Hex SHA-256 of the exact signed bytes.
    Column("sha256", String(SHA256_HEX), nullable=False),
    Column("document_created_at", UTCDateTime(), nullable=False),
    Column("stored_at", UTCDateTime(), nullable=False),
    # The signed bytes sealed with the exchange data key; NULL once erased.
    Column("body", LargeBinary(), nullable=True),
    # The node-signed receipt given to the submitter ('out' only).
    Column("receipt", LargeBinary(), nullable=True),
    CheckConstraint("direction IN ('in', 'out')", name="direction"),
    Index(None, "exchange_id"),
    # The performance figures find a period's Requests by their signed time (storage/kpi.py).
    Index(None, "document_type", "document_created_at"),
)

OUTBOX_STATES = ("pending", "inflight", "sent", "dead")

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("peer_node", String(ACTOR), nullable=False),
    Column("message_id", String(ID), ForeignKey("messages.message_id"), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("last_error", String(CODE), nullable=True),
    Column("dead_reason", String(CODE), nullable=True),
    Column("sent_at", UTCDateTime(), nullable=True),
    Column("peer_receipt_sha256", String(SHA256_HEX), nullable=True),
    CheckConstraint("state IN ('pending', 'inflight', 'sent', 'dead')", name="state"),
    Index(None, "peer_node", "state", "next_attempt_at", "id"),
    Index(None, "message_id"),
    sqlite_autoincrement=True,
)

envelopes_in = Table(
    "envelopes_in",
    metadata,
    Column("envelope_id", String(ID), primary_key=True),
    Column("peer_node", String(ACTOR), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("sha256", String(SHA256_HEX), nullable=False),
    # The node-signed receipt we answered with; returned again on replay.
    Column("receipt", LargeBinary(), nullable=False),
    Index(None, "received_at"),
)

PUSH_STATES = ("pending", "inflight", "sent", "dead")

deliveries = Table(
    "deliveries",
    metadata,
    # The pull cursor: per authority, seqs become visible in increasing order.
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("authority_id", String(ACTOR), nullable=False),
    Column("message_id", String(ID), ForeignKey("messages.message_id"), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime(), nullable=True),
    # Push delivery (NULL: the authority pulls).
    Column("push_state", String(16), nullable=True),
    Column("attempts", Integer(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("last_error", String(CODE), nullable=True),
    CheckConstraint(
        "push_state IS NULL OR push_state IN ('pending', 'inflight', 'sent', 'dead')",
        name="push_state",
    ),
    Index(None, "authority_id", "seq"),
    Index(None, "authority_id", "push_state", "next_attempt_at"),
    Index(None, "message_id"),
    sqlite_autoincrement=True,
)

tracking = Table(
    "tracking",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("exchange_id", String(ID), nullable=False),
    Column("stage", String(CODE), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("message_id", String(ID), nullable=True),
    # The node that observed the stage (ours, or a peer's report).
    Column("node", String(ACTOR), nullable=False),
    # A short code, never personal data.
    Column("detail", String(CODE), nullable=True),
    Index(None, "exchange_id", "id"),
    sqlite_autoincrement=True,
)

# The audit log (gateway.core.audit, gateway.storage.audit): append-only,
# hash-chained; metadata only (ids, codes, keyed digests, times).
audit_log = Table(
    "audit_log",
    metadata,
    # Assigned by append_audit_txn (last + 1); the primary key makes a
    # concurrent append of the same number fail and retry.
    Column("seq", BigId, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("event", String(CODE), nullable=False),
    Column("actor", String(ID), nullable=False),
    Column("exchange_id", String(ID), nullable=False),
    Column("message_id", String(ID), nullable=False),
    Column("digest", String(SHA256_HEX), nullable=False),
    Column("prev", String(SHA256_HEX), nullable=False),
    Column("hash", String(SHA256_HEX), nullable=False),
    Index(None, "exchange_id", "seq"),
    Index(None, "at"),
)

# Merkle tree heads over audit entries 1..size.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("size", BigId, primary_key=True, autoincrement=False),
    Column("root", String(SHA256_HEX), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
)

# Node-signed checkpoints of this node's audit log (gateway.service.audit_checkpoints),
# each with its RFC 3161 time-stamp token once a TSA granted one.
audit_signed_checkpoints = Table(
    "audit_signed_checkpoints",
    metadata,
    Column("size", BigId, primary_key=True, autoincrement=False),
    Column("root", String(SHA256_HEX), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("signed", LargeBinary(), nullable=False),
    Column("tsa_token", LargeBinary(), nullable=True),
)

# The signed checkpoints peers sent of THEIR logs, each consistent with the one before.
audit_peer_checkpoints = Table(
    "audit_peer_checkpoints",
    metadata,
    Column("peer", String(ACTOR), primary_key=True),
    Column("size", BigId, primary_key=True, autoincrement=False),
    Column("root", String(SHA256_HEX), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("signed", LargeBinary(), nullable=False),
    Column("tsa_token", LargeBinary(), nullable=True),
    Column("received_at", UTCDateTime(), nullable=False),
)

# Checkpoints a peer sent that do not extend the one held from it: kept as evidence.
audit_peer_conflicts = Table(
    "audit_peer_conflicts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("peer", String(ACTOR), nullable=False),
    Column("detected_at", UTCDateTime(), nullable=False),
    Column("code", String(CODE), nullable=False),
    Column("held_size", BigId, nullable=False),
    Column("offered_size", BigId, nullable=False),
    Column("offered_root", String(SHA256_HEX), nullable=False),
    Column("signed", LargeBinary(), nullable=False),
    Index(None, "peer", "id"),
)

# The admin console's accounts (gateway.storage.console_accounts): users,
# sessions (only a hash of each session token is stored, so a copy of the
# database does not hand out sessions), and failed logins for rate limiting
# (keyed by a hash of the user name or client address).
CONSOLE_ROLES = ("operator", "coordinator", "auditor")

console_users = Table(
    "console_users",
    metadata,
    Column("username", String(ACTOR), primary_key=True),
    Column("role", String(16), nullable=False),
    # The coordinator id a coordinator account is bound to (its scope).
    Column("coordinator_id", String(ACTOR), nullable=True),
    # argon2id hash (PHC string); NULL: the account logs in by certificate only.
    Column("password_hash", String(255), nullable=True),
    # Hex SHA-256 of the DER of a client certificate that may log in as this user.
    Column("cert_fingerprint", String(SHA256_HEX), nullable=True),
    Column("language", String(8), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("disabled_at", UTCDateTime(), nullable=True),
    CheckConstraint("role IN ('operator', 'coordinator', 'auditor')", name="role"),
    Index(None, "cert_fingerprint"),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", String(SHA256_HEX), primary_key=True),
    Column("username", String(ACTOR), ForeignKey("console_users.username"), nullable=False),
    Column("method", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index(None, "username"),
    Index(None, "expires_at"),
)

console_login_failures = Table(
    "console_login_failures",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # Hex SHA-256 of "user:<name>" or "addr:<address>": never the name or address itself.
    Column("subject", String(SHA256_HEX), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Index(None, "subject", "at"),
    sqlite_autoincrement=True,
)
