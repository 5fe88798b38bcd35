"""Message store: submitted and received documents, sealed per exchange, with replay protection.

* :func:`submit_messages_txn` stores documents a national system of this node
  submitted: exchange (created with its data key on the first document),
  sealed message, outbox row and tracking rows in one transaction. Several
  submissions in one call share one commit (group commit).
* :func:`store_inbound_envelope_txn` stores the documents of one envelope from
  a peer node: messages, deliveries, tracking and the envelope's receipt, in
  one transaction; a replayed envelope id only returns the stored receipt.
* :func:`stored_receipt_txn` finds the receipt of an earlier submission of
  the same bytes (a national system retrying after an outage).
* :func:`load_message_txn` / :func:`load_bodies_txn` unseal stored bodies.

Message ids are unique forever: the row (without its body) outlives erasure.

Each stored document is recorded in the audit log in its storing transaction
(SUBMITTED or RECEIVED, then STATE_CHANGED when it opened the exchange or
moved its state), and so is each document refused here (REFUSED); see
docs/audit.md. Each transaction that inserts outbox or delivery rows
notifies the other processes on a shared PostgreSQL database at commit
(:mod:`gateway.storage.notify`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gateway.core import audit, dataprotect
from gateway.core.audit import Event, node_actor
from gateway.core.dataprotect import Sealer
from gateway.core.docxml import sha256_hex
from gateway.core.errors import GatewayError, Unavailable
from gateway.storage.audit import append_audit_records_txn
from gateway.storage.db import read_only
from gateway.storage.errors import (
    DuplicateMessage,
    EnvelopeIdReused,
    ExchangeErased,
    MessageIdReused,
    MessageNotFound,
    TransactionRace,
)
from gateway.storage.exchanges import OpenExchange, open_exchange
from gateway.storage.model import (
    KEEP_STATE,
    Accepted,
    InboundEnvelope,
    InboundPayload,
    InboundResult,
    Lifecycle,
    MessageMeta,
    Refused,
    Stage,
    StoredMessage,
    Submission,
)
from gateway.storage.notify import DELIVERIES_CHANNEL, OUTBOX_CHANNEL, notify_txn
from gateway.storage.personal_data import hand_over
from gateway.storage.tables import (
    deliveries,
    envelopes_in,
    exchange_keys,
    messages,
    outbox,
)
from gateway.storage.tracking import insert_tracking, tracking_row


def body_aad(message_id: str) -> bytes:
    """The associated data binding a sealed body to its message id."""
    return dataprotect.aad_for("message-body", message_id)


# The statements every stored document runs, built once: SQLAlchemy then reuses
# their cache key and compiled form instead of rebuilding both per document.
_EXISTING = select(
    messages.c.message_id,
    messages.c.sha256,
    messages.c.direction,
    messages.c.receipt,
).where(messages.c.message_id.in_(bindparam("ids", expanding=True)))
_INSERT_MESSAGES = insert(messages)
_INSERT_OUTBOX = insert(outbox)
_INSERT_DELIVERIES = insert(deliveries)
_INSERT_ENVELOPE = insert(envelopes_in)
_EXCHANGE_IDS = select(messages.c.message_id, messages.c.exchange_id).where(
    messages.c.message_id.in_(bindparam("ids", expanding=True))
)
_STORED_ENVELOPE = select(
    envelopes_in.c.peer_node, envelopes_in.c.sha256, envelopes_in.c.receipt
).where(envelopes_in.c.envelope_id == bindparam("envelope_id"))


def _existing(conn: Connection, message_ids: Iterable[str]) -> dict[str, Any]:
    ids = sorted(set(message_ids))
    if not ids:
        return {}
    rows = conn.execute(_EXISTING, {"ids": ids})
    return {r.message_id: r for r in rows}


def exchange_ids_of(conn: Connection, message_ids: Iterable[str]) -> dict[str, str]:
    """The exchange id of each of ``message_ids`` that exists."""
    ids = sorted(set(message_ids))
    if not ids:
        return {}
    rows = conn.execute(_EXCHANGE_IDS, {"ids": ids})
    return {r.message_id: r.exchange_id for r in rows}


def _insert_messages(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    try:
        conn.execute(_INSERT_MESSAGES, rows)
    except IntegrityError as exc:
        # Only a concurrent transaction storing the same id gets here (we
        # looked first): retry, and the retry sees it.
        raise TransactionRace("a message id was stored concurrently") from exc


def _resubmission_error(message_id: str, sha256: str, prior: Any) -> GatewayError:
    if prior.direction == "out" and prior.sha256 == sha256 and prior.receipt is not None:
        return DuplicateMessage(message_id, bytes(prior.receipt))
    return MessageIdReused(message_id)


def submit_messages_txn(
    conn: Connection,
    submissions: Sequence[Submission],
    *,
    sealer: Sealer,
    now: datetime,
    node: str,
    lifecycle: Lifecycle = KEEP_STATE,
) -> list[Accepted | GatewayError]:
    """Store submitted documents for sending; one result per submission, in order.

    A result is :class:`Accepted`, or the refusal of that submission alone
    (nothing of it stored): :class:`DuplicateMessage` (same id and bytes as an
    earlier submission: carries the stored receipt), :class:`MessageIdReused`
    (same id, other bytes, or an id received from a peer),
    ``ExchangeMismatch``, ``ExchangeErased`` or an error raised by
    ``lifecycle``. Database failures raise and roll the whole batch back.
    """
    prior = _existing(conn, (s.message_id for s in submissions))
    results: list[Accepted | GatewayError] = []
    message_rows: list[dict[str, Any]] = []
    outbox_rows: list[dict[str, Any]] = []
    track_rows: list[dict[str, Any]] = []
    records: list[audit.Record] = []
    delivery_rows: list[dict[str, Any]] = []
    for sub in submissions:
        sha = sha256_hex(sub.body)
        earlier = prior.get(sub.message_id)
        if earlier is not None:
            error = _resubmission_error(sub.message_id, sha, earlier)
            results.append(error)
            if not isinstance(error, DuplicateMessage):  # a duplicate gets its receipt again
                records.append(_refusal(sub, sub.sender_authority, error))
            continue
        try:
            opened = open_exchange(
                conn,
                sub.exchange,
                document_type=sub.document_type,
                sender=sub.sender_authority,
                receiver=sub.receiver_authority,
                sealer=sealer,
                now=now,
                node=node,
                lifecycle=lifecycle,
                message_id=sub.message_id,
                metadata=sub.metadata,
            )
        except Unavailable:
            raise
        except GatewayError as exc:
            results.append(exc)
            records.append(_refusal(sub, sub.sender_authority, exc))
            continue
        records.extend(_stored_records(Event.SUBMITTED, sub, sub.sender_authority, opened))
        if sub.forward_to is not None:
            hand_over(conn, opened.exchange_id, sub.forward_to, now=now, node=node)
        # Later submissions in this batch with the same id see this one.
        prior[sub.message_id] = _Prior("out", sha, sub.receipt)
        message_rows.append(
            {
                "message_id": sub.message_id,
                "exchange_id": opened.exchange_id,
                "direction": "out",
                "document_type": sub.document_type,
                "sender_authority": sub.sender_authority,
                "receiver_authority": sub.receiver_authority,
                "peer_node": sub.peer_node,
                "sha256": sha,
                "document_created_at": sub.document_created_at,
                "stored_at": now,
                "body": dataprotect.seal(opened.data_key, sub.body, body_aad(sub.message_id)),
                "receipt": sub.receipt,
            }
        )
        outbox_rows.append(
            {
                "peer_node": sub.peer_node,
                "message_id": sub.message_id,
                "state": "pending",
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
            }
        )
        for stage in (Stage.SUBMITTED, Stage.QUEUED):
            detail = sub.peer_node if stage is Stage.QUEUED else None
            track_rows.append(
                tracking_row(
                    opened.exchange_id,
                    stage,
                    at=now,
                    node=node,
                    message_id=sub.message_id,
                    detail=detail,
                )
            )
        track_rows.extend(opened.tracking)
        delivery_rows.extend(_copy_rows(sub.copies, sub.message_id, now))
        results.append(
            Accepted(
                message_id=sub.message_id,
                exchange_id=opened.exchange_id,
                sha256=sha,
                state=opened.state,
                exchange_created=opened.created,
            )
        )
    _insert_messages(conn, message_rows)
    if outbox_rows:
        conn.execute(_INSERT_OUTBOX, outbox_rows)
        notify_txn(conn, OUTBOX_CHANNEL, (r["peer_node"] for r in outbox_rows))
    insert_tracking(conn, track_rows)
    if delivery_rows:
        lock_delivery_streams(conn, (r["authority_id"] for r in delivery_rows))
        conn.execute(insert(deliveries), delivery_rows)
        notify_txn(conn, DELIVERIES_CHANNEL, (r["authority_id"] for r in delivery_rows))
    append_audit_records_txn(conn, records, at=now)  # last: see storage/audit.py
    return results


def _stored_records(
    event: Event, doc: Submission | InboundPayload, actor: str, opened: OpenExchange
) -> list[audit.Record]:
    """The audit records of a stored document: ``event``, then STATE_CHANGED if it moved the state."""
    records = [audit.Record(event, actor, opened.exchange_id, doc.message_id, doc.digest)]
    if opened.state_changed:
        records.append(
            audit.Record(
                Event.STATE_CHANGED, doc.sender_authority, opened.exchange_id, doc.message_id
            )
        )
    return records


def _refusal(doc: Submission | InboundPayload, actor: str, error: GatewayError) -> audit.Record:
    """The REFUSED record of a document refused while storing it (the code in the message field)."""
    return audit.Record(
        Event.REFUSED,
        actor,
        doc.exchange.exchange_id,
        audit.refusal_message(error.code, doc.message_id),
        doc.digest,
    )


def _copy_rows(copies: Sequence[str], message_id: str, now: datetime) -> list[dict[str, Any]]:
    """Pull deliveries of a document for this node's other recipients (its coordinators)."""
    return [
        {
            "authority_id": authority_id,
            "message_id": message_id,
            "created_at": now,
            "delivered_at": None,
            "push_state": None,
            "attempts": 0,
            "next_attempt_at": None,
        }
        for authority_id in copies
    ]


class _Prior:
    """A message accepted earlier in the same batch (quacks like an ``_existing`` row)."""

    __slots__ = ("direction", "receipt", "sha256")

    def __init__(self, direction: str, sha256: str, receipt: bytes | None) -> None:
        self.direction = direction
        self.sha256 = sha256
        self.receipt = receipt


def submit_message_txn(
    conn: Connection,
    submission: Submission,
    *,
    sealer: Sealer,
    now: datetime,
    node: str,
    lifecycle: Lifecycle = KEEP_STATE,
) -> Accepted:
    """Store one submitted document; raises the refusal (e.g. :class:`DuplicateMessage`).

    Raising rolls the transaction back, the refusal's audit entry with it: the
    pipeline calls :func:`submit_messages_txn`, which keeps that entry.
    """
    (result,) = submit_messages_txn(
        conn, [submission], sealer=sealer, now=now, node=node, lifecycle=lifecycle
    )
    if isinstance(result, GatewayError):
        raise result
    return result


@read_only
def stored_receipt_txn(conn: Connection, message_id: str, sha256: str) -> bytes | None:
    """The stored receipt of submitted message ``message_id`` if its bytes had ``sha256``."""
    receipt = conn.execute(
        select(messages.c.receipt).where(
            messages.c.message_id == message_id,
            messages.c.direction == "out",
            messages.c.sha256 == sha256,
        )
    ).scalar()
    return None if receipt is None else bytes(receipt)


def lock_delivery_streams(conn: Connection, authority_ids: Iterable[str]) -> None:
    """Make each authority's delivery seqs commit in increasing order (PostgreSQL).

    Sequence values are taken at insert but become visible at commit; two
    transactions could otherwise commit seq 11 before seq 10, and a client
    that pulled 11 and acknowledged up to it would skip 10. A transaction-
    scoped advisory lock per authority, taken in sorted order before any
    delivery row is inserted, serialises inserts per authority. SQLite's
    ``BEGIN IMMEDIATE`` already serialises all writers.
    """
    if conn.dialect.name != "postgresql":
        return
    for authority_id in sorted(set(authority_ids)):
        key = delivery_lock_key(authority_id)
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def delivery_lock_key(authority_id: str) -> int:
    """The PostgreSQL advisory-lock key of ``authority_id``'s delivery stream."""
    digest = hashlib.sha256(b"imi-gateway/deliveries/" + authority_id.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def store_inbound_envelope_txn(
    conn: Connection,
    envelope: InboundEnvelope,
    *,
    sealer: Sealer,
    now: datetime,
    node: str,
    lifecycle: Lifecycle = KEEP_STATE,
) -> InboundResult | Refused:
    """Store a verified envelope's documents for delivery, with the receipt answered.

    A replayed envelope id (same peer, same digest) returns the stored
    receipt and stores nothing; the same id with other bytes or from another
    peer raises :class:`EnvelopeIdReused`. A document already received in an
    earlier envelope is skipped (listed in ``duplicates``). A document that
    cannot be stored (its id in use for other bytes or for a document
    submitted here: :class:`MessageIdReused`; an exchange of other
    authorities, an erased exchange, a lifecycle conflict) refuses the whole
    envelope: the result is :class:`Refused` naming it, and nothing of the
    envelope is stored.
    """
    stored_env = conn.execute(_STORED_ENVELOPE, {"envelope_id": envelope.envelope_id}).first()
    if stored_env is not None:
        if stored_env.sha256 != envelope.sha256 or stored_env.peer_node != envelope.peer_node:
            raise EnvelopeIdReused(envelope.envelope_id)
        return InboundResult(receipt=bytes(stored_env.receipt), replayed=True)
    with conn.begin_nested() as savepoint:
        result = _store_envelope(
            conn, envelope, sealer=sealer, now=now, node=node, lifecycle=lifecycle
        )
        if isinstance(result, Refused):
            savepoint.rollback()  # nothing of a refused envelope is stored
    if isinstance(result, Refused):
        # ... but its refusal is recorded, in this transaction.
        refused = next(p for p in envelope.payloads if p.message_id == result.message_id)
        append_audit_records_txn(
            conn, [_refusal(refused, node_actor(envelope.peer_node), result.error)], at=now
        )
    return result


def _store_envelope(
    conn: Connection,
    envelope: InboundEnvelope,
    *,
    sealer: Sealer,
    now: datetime,
    node: str,
    lifecycle: Lifecycle,
) -> InboundResult | Refused:
    try:
        # First, so that a concurrent replay of this envelope waits here.
        conn.execute(
            _INSERT_ENVELOPE,
            {
                "envelope_id": envelope.envelope_id,
                "peer_node": envelope.peer_node,
                "received_at": now,
                "sha256": envelope.sha256,
                "receipt": envelope.receipt,
            },
        )
    except IntegrityError as exc:
        raise TransactionRace("the envelope was stored concurrently") from exc

    prior = _existing(conn, (p.message_id for p in envelope.payloads))
    stored: list[str] = []
    duplicates: list[str] = []
    message_rows: list[dict[str, Any]] = []
    delivery_rows: list[dict[str, Any]] = []
    track_rows: list[dict[str, Any]] = []
    records: list[audit.Record] = []
    for payload in envelope.payloads:
        sha = sha256_hex(payload.body)
        earlier = prior.get(payload.message_id)
        if earlier is not None:
            if earlier.direction == "in" and earlier.sha256 == sha:
                duplicates.append(payload.message_id)
                continue
            return Refused(payload.message_id, MessageIdReused(payload.message_id))
        try:
            opened = open_exchange(
                conn,
                payload.exchange,
                document_type=payload.document_type,
                sender=payload.sender_authority,
                receiver=payload.receiver_authority,
                sealer=sealer,
                now=now,
                node=node,
                lifecycle=lifecycle,
                message_id=payload.message_id,
                metadata=payload.metadata,
            )
        except Unavailable:
            raise
        except GatewayError as exc:
            # Name the document, so the sender can set it aside and send the rest.
            return Refused(payload.message_id, exc)
        records.extend(
            _stored_records(Event.RECEIVED, payload, node_actor(envelope.peer_node), opened)
        )
        if payload.forward_to is not None:
            hand_over(conn, opened.exchange_id, payload.forward_to, now=now, node=node)
        prior[payload.message_id] = _Prior("in", sha, None)
        stored.append(payload.message_id)
        message_rows.append(
            {
                "message_id": payload.message_id,
                "exchange_id": opened.exchange_id,
                "direction": "in",
                "document_type": payload.document_type,
                "sender_authority": payload.sender_authority,
                "receiver_authority": payload.receiver_authority,
                "peer_node": envelope.peer_node,
                "sha256": sha,
                "document_created_at": payload.document_created_at,
                "stored_at": now,
                "body": dataprotect.seal(
                    opened.data_key, payload.body, body_aad(payload.message_id)
                ),
                "receipt": None,
            }
        )
        delivery_rows.append(
            {
                "authority_id": payload.receiver_authority,
                "message_id": payload.message_id,
                "created_at": now,
                "delivered_at": None,
                "push_state": "pending" if payload.push else None,
                "attempts": 0,
                "next_attempt_at": now if payload.push else None,
            }
        )
        delivery_rows.extend(_copy_rows(payload.copies, payload.message_id, now))
        track_rows.append(
            tracking_row(
                opened.exchange_id,
                Stage.RECEIVED,
                at=now,
                node=node,
                message_id=payload.message_id,
                detail=envelope.peer_node,
            )
        )
        track_rows.extend(opened.tracking)
    _insert_messages(conn, message_rows)
    insert_tracking(conn, track_rows)
    if delivery_rows:
        lock_delivery_streams(conn, (r["authority_id"] for r in delivery_rows))
        conn.execute(_INSERT_DELIVERIES, delivery_rows)
        notify_txn(conn, DELIVERIES_CHANNEL, (r["authority_id"] for r in delivery_rows))
    append_audit_records_txn(conn, records, at=now)  # last: see storage/audit.py
    return InboundResult(
        receipt=envelope.receipt,
        replayed=False,
        stored=tuple(stored),
        duplicates=tuple(duplicates),
    )


_META_COLUMNS = (
    messages.c.message_id,
    messages.c.exchange_id,
    messages.c.direction,
    messages.c.document_type,
    messages.c.sender_authority,
    messages.c.receiver_authority,
    messages.c.peer_node,
    messages.c.sha256,
    messages.c.document_created_at,
    messages.c.stored_at,
    (messages.c.body.is_(None)).label("erased"),
)


def _meta(row: Any) -> MessageMeta:
    return MessageMeta(
        message_id=row.message_id,
        exchange_id=row.exchange_id,
        direction=row.direction,
        document_type=row.document_type,
        sender_authority=row.sender_authority,
        receiver_authority=row.receiver_authority,
        peer_node=row.peer_node,
        sha256=row.sha256,
        document_created_at=row.document_created_at,
        stored_at=row.stored_at,
        erased=bool(row.erased),
    )


@read_only
def message_meta_txn(conn: Connection, message_id: str) -> MessageMeta:
    """A message's metadata; :class:`MessageNotFound` if unknown."""
    row = conn.execute(select(*_META_COLUMNS).where(messages.c.message_id == message_id)).first()
    if row is None:
        raise MessageNotFound(f"message {message_id} is not known here")
    return _meta(row)


@read_only
def exchange_messages_txn(conn: Connection, exchange_id: str) -> list[MessageMeta]:
    """Metadata of an exchange's messages, oldest first."""
    rows = conn.execute(
        select(*_META_COLUMNS)
        .where(messages.c.exchange_id == exchange_id)
        .order_by(messages.c.stored_at, messages.c.message_id)
    )
    return [_meta(r) for r in rows]


@read_only
def load_message_txn(conn: Connection, message_id: str, *, sealer: Sealer) -> StoredMessage:
    """A message with its unsealed signed bytes.

    Raises :class:`MessageNotFound`, or :class:`ExchangeErased` once its
    exchange was erased. Access control (only the authorities of the
    exchange) and the audit event of the read are the caller's.
    """
    row = conn.execute(
        select(*_META_COLUMNS, messages.c.body, exchange_keys.c.wrapped_data_key)
        .outerjoin(exchange_keys, exchange_keys.c.exchange_id == messages.c.exchange_id)
        .where(messages.c.message_id == message_id)
    ).first()
    if row is None:
        raise MessageNotFound(f"message {message_id} is not known here")
    if row.body is None or row.wrapped_data_key is None:
        raise ExchangeErased(f"the exchange of message {message_id} has been erased")
    data_key = sealer.unwrap_key(row.wrapped_data_key, row.exchange_id)
    body = dataprotect.open_sealed(data_key, row.body, body_aad(message_id))
    return StoredMessage(meta=_meta(row), body=body)


@read_only
def load_bodies_txn(
    conn: Connection, message_ids: Sequence[str], *, sealer: Sealer
) -> dict[str, bytes | None]:
    """Unsealed bodies of ``message_ids`` (for a sender batch): None for erased, absent if unknown."""
    ids = sorted(set(message_ids))
    if not ids:
        return {}
    rows = conn.execute(
        select(
            messages.c.message_id,
            messages.c.exchange_id,
            messages.c.body,
            exchange_keys.c.wrapped_data_key,
        )
        .outerjoin(exchange_keys, exchange_keys.c.exchange_id == messages.c.exchange_id)
        .where(messages.c.message_id.in_(ids))
    )
    keys: dict[str, bytes] = {}
    out: dict[str, bytes | None] = {}
    for row in rows:
        if row.body is None or row.wrapped_data_key is None:
            out[row.message_id] = None
            continue
        key = keys.get(row.exchange_id)
        if key is None:
            key = sealer.unwrap_key(row.wrapped_data_key, row.exchange_id)
            keys[row.exchange_id] = key
        out[row.message_id] = dataprotect.open_sealed(key, row.body, body_aad(row.message_id))
    return out


def purge_envelope_receipts_txn(conn: Connection, *, received_before: datetime) -> int:
    """Forget envelope ids (and their stored receipts) received before ``received_before``.

    Safe once envelopes that old are refused anyway by the creation-time
    acceptance window; message ids stay unique forever regardless.
    """
    result = conn.execute(delete(envelopes_in).where(envelopes_in.c.received_at < received_before))
    return int(result.rowcount)
