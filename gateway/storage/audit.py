"""The audit log store: append entries inside the caller's transaction, select them for export.

* :func:`append_audit_txn` appends the next entry of the hash chain (see
  :mod:`gateway.core.audit`) INSIDE the transaction of the action it records,
  so a crash leaves no action without its entry and no entry without its
  action. It reads the last entry's number and hash and inserts the next
  number, which is the primary key. On SQLite, ``BEGIN IMMEDIATE`` serialises
  writers; on PostgreSQL a transaction-scoped advisory lock does, held until
  commit (so append late in a transaction: the lock serialises every
  recorded action from there on). Should two appends still take the same
  number, the insert fails, raised as TransactionRace, and
  :class:`~gateway.storage.db.Database` runs the whole transaction again.
  :func:`append_audit_records_txn` appends several in one go (the stores
  collect a transaction's events and append them at its end).
* :func:`record_erasure_txn`: the entry the retention service writes for each
  erased exchange (in the erasing transaction).
* :func:`audit_log_txn` (entries 1..N), :func:`select_audit_txn` (the numbers
  of a time range or of one exchange) feed the export;
  :func:`write_checkpoint_txn` / :func:`checkpoints_txn` keep the tree heads.

Entries hold metadata only: ids, codes, keyed digests and times.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gateway.core import audit
from gateway.core.audit import Checkpoint, Entry
from gateway.storage.db import read_only
from gateway.storage.errors import TransactionRace
from gateway.storage.tables import audit_checkpoints, audit_log


def _entry(row: Any) -> Entry:
    return Entry(
        seq=row.seq,
        at=row.at,
        event=row.event,
        actor=row.actor,
        exchange_id=row.exchange_id,
        message_id=row.message_id,
        digest=row.digest,
        prev=row.prev,
    )


#: The PostgreSQL advisory-lock key of the audit log's head.
AUDIT_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"imi-gateway/audit-log").digest()[:8], "big", signed=True
)


def _lock_audit_head(conn: Connection) -> None:
    """Serialise appends on PostgreSQL: a transaction-scoped advisory lock, held to commit.

    Writers then wait for each other instead of failing on the entry number
    and running their whole transaction again. SQLite's ``BEGIN IMMEDIATE``
    already serialises all writers.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})


# Built once: every stored document appends, so SQLAlchemy reuses their cache
# keys and compiled forms instead of rebuilding both per transaction.
_HEAD = select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
_INSERT_ENTRIES = insert(audit_log)


def append_audit_txn(
    conn: Connection,
    *,
    at: datetime,
    event: str,
    actor: str,
    exchange_id: str = "",
    message_id: str = "",
    digest: str = "",
) -> Entry:
    """Append the next audit entry in the caller's transaction; return it.

    ``digest`` is the keyed digest of the document
    (:func:`gateway.core.audit.document_digest`), never the document.
    """
    record = audit.Record(event, actor, exchange_id, message_id, digest)
    (entry,) = append_audit_records_txn(conn, [record], at=at)
    return entry


def record_if_changed_txn(
    conn: Connection, *, at: datetime, event: str, actor: str, message_id: str, digest: str
) -> Entry | None:
    """Append ``event`` unless the newest entry of that event already carries ``digest``.

    At start a node records the configuration and trust it runs with this way,
    so that a hand edit of ``gateway.toml`` or of the trust store (which no
    command recorded) still leaves its entry (docs/audit.md).
    """
    last = conn.execute(
        select(audit_log.c.digest)
        .where(audit_log.c.event == event)
        .order_by(audit_log.c.seq.desc())
        .limit(1)
    ).scalar()
    if last == digest:
        return None
    return append_audit_txn(
        conn, at=at, event=event, actor=actor, message_id=message_id, digest=digest
    )


def append_audit_records_txn(
    conn: Connection, records: Sequence[audit.Record], *, at: datetime
) -> list[Entry]:
    """Append ``records`` in order as the next entries, in the caller's transaction.

    One read of the log's head (its number and stored hash) and one insert
    for all of them, each entry hashed once: the stores
    collect the events of a transaction (a batch of documents, say) and
    append them at its end, which is also where the PostgreSQL lock belongs.
    """
    if not records:
        return []
    _lock_audit_head(conn)
    # The head's number and stored hash: the chain goes on from the hash recorded
    # when the head was appended (``audit verify`` recomputes every one of them).
    head = conn.execute(_HEAD).first()
    seq, prev = (0, audit.GENESIS) if head is None else (int(head.seq), str(head.hash))
    entries: list[Entry] = []
    rows: list[dict[str, Any]] = []
    for record in records:
        seq += 1
        entry = Entry(
            seq=seq,
            at=at,
            event=record.event,
            actor=record.actor,
            exchange_id=record.exchange_id,
            message_id=record.message_id,
            digest=record.digest,
            prev=prev,
        )
        prev = audit.entry_hash(entry)
        entries.append(entry)
        rows.append(
            {
                "seq": entry.seq,
                "at": entry.at,
                "event": entry.event,
                "actor": entry.actor,
                "exchange_id": entry.exchange_id,
                "message_id": entry.message_id,
                "digest": entry.digest,
                "prev": entry.prev,
                "hash": prev,
            }
        )
    try:
        conn.execute(_INSERT_ENTRIES, rows)
    except IntegrityError as exc:
        raise TransactionRace("an audit entry was appended concurrently") from exc
    return entries


def record_erasure_txn(conn: Connection, exchange_id: str, *, at: datetime, actor: str) -> Entry:
    """The audit entry of an exchange's erasure (call it in the erasing transaction)."""
    return append_audit_txn(
        conn, at=at, event=audit.Event.ERASED, actor=actor, exchange_id=exchange_id
    )


@read_only
def audit_log_txn(conn: Connection) -> list[Entry]:
    """Every entry, 1..N in order (the checkpoint covers them all)."""
    return [_entry(r) for r in conn.execute(select(audit_log).order_by(audit_log.c.seq))]


@read_only
def stored_hashes_txn(conn: Connection) -> list[str]:
    """The hash recorded with each entry when it was appended, 1..N in order."""
    return [r.hash for r in conn.execute(select(audit_log.c.hash).order_by(audit_log.c.seq))]


@read_only
def select_audit_txn(
    conn: Connection,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    exchange_id: str | None = None,
) -> list[int]:
    """The numbers of the entries at ``start`` <= time < ``end`` and/or of one exchange."""
    query = select(audit_log.c.seq).order_by(audit_log.c.seq)
    if start is not None:
        query = query.where(audit_log.c.at >= start)
    if end is not None:
        query = query.where(audit_log.c.at < end)
    if exchange_id is not None:
        query = query.where(audit_log.c.exchange_id == exchange_id)
    return [row.seq for row in conn.execute(query)]


def write_checkpoint_txn(conn: Connection, *, at: datetime) -> Checkpoint:
    """Record the tree head over every entry so far (once per size)."""
    entries = audit_log_txn(conn)
    cp = audit.checkpoint(entries, at)
    known = conn.execute(
        select(audit_checkpoints.c.size).where(audit_checkpoints.c.size == cp.size)
    ).first()
    if known is None:
        conn.execute(insert(audit_checkpoints).values(size=cp.size, root=cp.root, at=cp.at))
    return cp


def audit_export_txn(
    conn: Connection,
    *,
    at: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    exchange_id: str | None = None,
) -> tuple[list[Entry], list[str], list[int]]:
    """In one transaction: record a checkpoint, then every entry, its stored hash, and the selection."""
    write_checkpoint_txn(conn, at=at)
    return (
        audit_log_txn(conn),
        stored_hashes_txn(conn),
        select_audit_txn(conn, start=start, end=end, exchange_id=exchange_id),
    )


@read_only
def checkpoints_txn(conn: Connection) -> list[Checkpoint]:
    """The recorded tree heads, oldest first."""
    rows = conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.size))
    return [Checkpoint(r.size, r.root, r.at) for r in rows]
