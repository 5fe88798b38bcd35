"""Exchange store: creation with a wrapped data key, metadata, state, erasure (crypto-shredding).

An exchange row is created by its first document (submitted or received),
with a fresh data key wrapped under the node KEK (``gateway.core.dataprotect``).
The wrapped key is a row of its own in ``exchange_keys``. Erasure deletes
it and the sealed bodies; the metadata rows stay
(message ids are unique forever, tracking and audit refer to them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from gateway.core import dataprotect
from gateway.core.audit import Event, node_actor
from gateway.core.dataprotect import Sealer
from gateway.storage.audit import append_audit_txn
from gateway.storage.db import read_only
from gateway.storage.errors import (
    ExchangeErased,
    ExchangeMismatch,
    ExchangeNotFound,
    ExchangeStateChanged,
    TransactionRace,
)
from gateway.storage.model import (
    Exchange,
    ExchangeInfo,
    ExchangeSides,
    Lifecycle,
    Stage,
    exchange_stage,
)
from gateway.storage.tables import deliveries, exchange_keys, exchanges, messages, outbox
from gateway.storage.tracking import insert_tracking, tracking_row

_METADATA_COLUMNS = list(exchanges.c)  # the wrapped data key is in exchange_keys

# The statements every stored document runs, built once: SQLAlchemy then reuses
# their cache key and compiled form instead of rebuilding both per document.
_LOCK_EXCHANGE = (
    select(exchanges, exchange_keys.c.wrapped_data_key)
    .outerjoin(exchange_keys, exchange_keys.c.exchange_id == exchanges.c.exchange_id)
    .where(exchanges.c.exchange_id == bindparam("xid"))
    .with_for_update(of=exchanges)
)
_INSERT_EXCHANGE = insert(exchanges)
_INSERT_KEY = insert(exchange_keys)
_UPDATE_EXCHANGE = update(exchanges).where(exchanges.c.exchange_id == bindparam("xid"))


def _exchange(row: Row[Any]) -> Exchange:
    return Exchange(
        exchange_id=row.exchange_id,
        requester_authority=row.requester_authority,
        responder_authority=row.responder_authority,
        requester_node=row.requester_node,
        responder_node=row.responder_node,
        area=row.area,
        question_set=row.question_set,
        catalogue_version=row.catalogue_version,
        state=row.state,
        created_at=row.created_at,
        updated_at=row.updated_at,
        closed_at=row.closed_at,
        erased_at=row.erased_at,
        blocked_at=row.blocked_at,
        acceptance_due_at=row.acceptance_due_at,
        reply_due_at=row.reply_due_at,
        reply_date_agreed=bool(row.reply_date_agreed),
        accepted_at=row.accepted_at,
        answered_at=row.answered_at,
        disputed_at=row.disputed_at,
        resumes_to=row.resumes_to,
    )


@dataclass(frozen=True)
class OpenExchange:
    """An exchange ready to take a document, inside the storing transaction."""

    exchange_id: str
    data_key: bytes = field(repr=False)
    state: str
    created: bool
    # The state-change tracking rows for the caller to insert after its own.
    tracking: tuple[dict[str, Any], ...]
    # True when the document opened the exchange or moved its state (a STATE_CHANGED entry).
    state_changed: bool = False


def open_exchange(
    conn: Connection,
    info: ExchangeInfo,
    *,
    document_type: str,
    sender: str,
    receiver: str,
    sealer: Sealer,
    now: datetime,
    node: str,
    lifecycle: Lifecycle,
    message_id: str | None = None,
    metadata: Mapping[str, object] | None = None,
) -> OpenExchange:
    """Create ``info``'s exchange or lock the existing one, and advance its state.

    The lifecycle decides, from the stored exchange (locked) and the
    document's ``sender``, the sender's role and the next state. Everything
    that can refuse the document (other authorities, erased exchange, the
    lifecycle) runs before anything is written, so a ``GatewayError`` from
    here leaves the transaction unchanged. The returned ``tracking`` rows
    (state changes) are for the caller to insert. ``metadata`` (deadlines,
    milestones: :func:`metadata_values`) is written with the state; entering
    the disputed state remembers the state it left (``resumes_to``). A concurrent creation of
    the same exchange (PostgreSQL) raises ``TransactionRace``, which the
    runner retries.
    """
    row = conn.execute(_LOCK_EXCHANGE, {"xid": info.exchange_id}).first()
    if row is None:
        state = lifecycle.next_state(None, document_type, sender)
        data_key = dataprotect.new_data_key()
        values = {
            "exchange_id": info.exchange_id,
            "requester_authority": info.requester_authority,
            "responder_authority": info.responder_authority,
            "requester_node": info.requester_node,
            "responder_node": info.responder_node,
            "area": info.area,
            "question_set": info.question_set,
            "catalogue_version": info.catalogue_version,
            "state": state,
            "created_at": now,
            "updated_at": now,
            "closed_at": now if lifecycle.is_closed(state) else None,
            "erased_at": None,
        }
        values.update(metadata_values(None, metadata))
        try:
            conn.execute(_INSERT_EXCHANGE, values)
            conn.execute(
                _INSERT_KEY,
                {
                    "exchange_id": info.exchange_id,
                    "wrapped_data_key": sealer.wrap_key(data_key, info.exchange_id),
                },
            )
        except IntegrityError as exc:
            raise TransactionRace(f"exchange {info.exchange_id} was created concurrently") from exc
        track = _stage_rows(
            info.exchange_id, lifecycle, document_type, None, state, now, node, message_id
        )
        return OpenExchange(
            info.exchange_id, data_key, state, created=True, tracking=track, state_changed=True
        )

    stored = ExchangeSides(
        row.requester_authority, row.responder_authority, row.state, row.resumes_to
    )
    if not stored.has_parties(sender, receiver):
        # Not party to it: answer exactly as if the exchange did not exist (the
        # lifecycle refuses anything but an opening document into an unknown
        # exchange), so that its existence and its parties stay hidden.
        lifecycle.next_state(None, document_type, sender)
        raise ExchangeMismatch(info.exchange_id, "authorities")
    if row.wrapped_data_key is None:
        raise ExchangeErased(f"exchange {info.exchange_id} has been erased")
    state = lifecycle.next_state(stored, document_type, sender)
    data_key = sealer.unwrap_key(row.wrapped_data_key, info.exchange_id)
    extra = metadata_values(row, metadata)
    if state != row.state:
        extra["resumes_to"] = row.state if state == DISPUTED else None
    if state != row.state or extra:
        _write_state(conn, info.exchange_id, state, lifecycle.is_closed(state), row, now, extra)
    track = _stage_rows(
        info.exchange_id, lifecycle, document_type, row.state, state, now, node, message_id
    )
    return OpenExchange(
        info.exchange_id,
        data_key,
        state,
        created=False,
        tracking=track,
        state_changed=state != row.state,
    )


def _stage_rows(
    exchange_id: str,
    lifecycle: Lifecycle,
    document_type: str,
    before: str | None,
    after: str,
    now: datetime,
    node: str,
    message_id: str | None,
) -> tuple[dict[str, Any], ...]:
    stage = exchange_stage(lifecycle, document_type, before, after)
    if stage is None:
        return ()
    return (tracking_row(exchange_id, stage, at=now, node=node, message_id=message_id),)


def _write_state(
    conn: Connection,
    exchange_id: str,
    state: str,
    closed: bool | None,
    row: Row[Any],
    now: datetime,
    extra: Mapping[str, object] | None = None,
) -> None:
    values: dict[str, Any] = {
        "xid": exchange_id,
        "state": state,
        "updated_at": now,
        **(extra or {}),
    }
    if closed is True and row.closed_at is None:
        values["closed_at"] = now
    elif closed is False and row.closed_at is not None:
        values["closed_at"] = None
    conn.execute(_UPDATE_EXCHANGE, values)


#: The disputed state (``gateway.core.lifecycle.State.DISPUTED``).
DISPUTED = "disputed"
#: Metadata columns a document may set, and those of which only the first value counts.
METADATA_COLUMNS = frozenset(
    {
        "acceptance_due_at",
        "reply_due_at",
        "reply_date_agreed",
        "accepted_at",
        "answered_at",
        "disputed_at",
    }
)
FIRST_ONLY = frozenset({"accepted_at", "answered_at", "disputed_at"})


def metadata_values(row: Row[Any] | None, metadata: Mapping[str, object] | None) -> dict[str, Any]:
    """The column values ``metadata`` sets on the stored ``row`` (None: a new exchange)."""
    values: dict[str, Any] = {}
    for name, value in (metadata or {}).items():
        if name not in METADATA_COLUMNS:
            raise ValueError(f"{name} is not exchange metadata")
        if name in FIRST_ONLY and row is not None and getattr(row, name) is not None:
            continue
        values[name] = value
    return values


@read_only
def exchange_txn(conn: Connection, exchange_id: str) -> Exchange:
    """The exchange's metadata; :class:`ExchangeNotFound` if unknown."""
    row = conn.execute(
        select(*_METADATA_COLUMNS).where(exchanges.c.exchange_id == exchange_id)
    ).first()
    if row is None:
        raise ExchangeNotFound(f"exchange {exchange_id} is not known here")
    return _exchange(row)


@read_only
def list_exchanges_txn(
    conn: Connection,
    *,
    authority_id: str | None = None,
    state: str | None = None,
    updated_before: datetime | None = None,
    limit: int = 100,
    area: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> list[Exchange]:
    """Exchanges, most recently updated first, filtered by authority, state, area and age.

    ``updated_before`` pages backwards (pass the last row's ``updated_at``) and
    finds overdue exchanges; ``created_from`` <= creation time < ``created_to``.
    """
    query = select(*_METADATA_COLUMNS)
    if authority_id is not None:
        query = query.where(
            or_(
                exchanges.c.requester_authority == authority_id,
                exchanges.c.responder_authority == authority_id,
            )
        )
    if state is not None:
        query = query.where(exchanges.c.state == state)
    if updated_before is not None:
        query = query.where(exchanges.c.updated_at < updated_before)
    if area is not None:
        query = query.where(exchanges.c.area == area)
    if created_from is not None:
        query = query.where(exchanges.c.created_at >= created_from)
    if created_to is not None:
        query = query.where(exchanges.c.created_at < created_to)
    query = query.order_by(exchanges.c.updated_at.desc(), exchanges.c.exchange_id).limit(limit)
    return [_exchange(r) for r in conn.execute(query)]


def set_exchange_state_txn(
    conn: Connection,
    exchange_id: str,
    state: str,
    *,
    now: datetime,
    node: str,
    expected: str | None = None,
    closed: bool | None = None,
    stage: str | None = None,
    detail: str | None = None,
) -> Exchange:
    """Set the exchange's state (with a tracking row), optionally only from ``expected``.

    The tracking row's stage is ``stage`` (default: the new state), with the
    optional short ``detail`` code. ``closed=True`` records the closing time (starting the retention timer) if
    not yet set, ``closed=False`` clears it (reopened), ``None`` leaves it.
    Raises :class:`ExchangeStateChanged` when the state is not ``expected``.
    A change of state is recorded in the audit log (STATE_CHANGED, actor the node).
    """
    row = conn.execute(
        select(exchanges).where(exchanges.c.exchange_id == exchange_id).with_for_update()
    ).first()
    if row is None:
        raise ExchangeNotFound(f"exchange {exchange_id} is not known here")
    if expected is not None and row.state != expected:
        raise ExchangeStateChanged(
            f"exchange {exchange_id} is in state {row.state}, not {expected}"
        )
    _write_state(conn, exchange_id, state, closed, row, now)
    insert_tracking(
        conn,
        [tracking_row(exchange_id, stage or state, at=now, node=node, detail=detail)],
    )
    if state != row.state:
        append_audit_txn(
            conn,
            at=now,
            event=Event.STATE_CHANGED,
            actor=node_actor(node),
            exchange_id=exchange_id,
        )
    return exchange_txn(conn, exchange_id)


def exchange_data_key_txn(conn: Connection, exchange_id: str, *, sealer: Sealer) -> bytes:
    """The exchange's unwrapped data key, for stores that seal further personal data.

    Raises :class:`ExchangeNotFound` or :class:`ExchangeErased`. Never log the result.
    """
    row = conn.execute(
        select(exchanges.c.exchange_id, exchange_keys.c.wrapped_data_key)
        .outerjoin(exchange_keys, exchange_keys.c.exchange_id == exchanges.c.exchange_id)
        .where(exchanges.c.exchange_id == exchange_id)
    ).first()
    if row is None:
        raise ExchangeNotFound(f"exchange {exchange_id} is not known here")
    if row.wrapped_data_key is None:
        raise ExchangeErased(f"exchange {exchange_id} has been erased")
    return sealer.unwrap_key(row.wrapped_data_key, exchange_id)


@read_only
def exchanges_due_for_erasure_txn(
    conn: Connection,
    *,
    closed_before: datetime,
    created_before: datetime,
    area: str | None = None,
    exclude_areas: Sequence[str] = (),
    limit: int = 100,
) -> list[str]:
    """Ids of unerased exchanges closed before ``closed_before``, or never closed and
    created before ``created_before`` (the limit for exchanges that never close).

    Oldest first (by opening time). ``area`` keeps one legislation area,
    ``exclude_areas`` leaves those out (areas with their own limits).
    """
    query = select(exchanges.c.exchange_id).where(
        exchanges.c.erased_at.is_(None),
        or_(
            exchanges.c.closed_at < closed_before,
            and_(exchanges.c.closed_at.is_(None), exchanges.c.created_at < created_before),
        ),
    )
    if area is not None:
        query = query.where(exchanges.c.area == area)
    if exclude_areas:
        query = query.where(exchanges.c.area.not_in(list(exclude_areas)))
    query = query.order_by(exchanges.c.created_at, exchanges.c.exchange_id).limit(limit)
    return list(conn.execute(query).scalars())


@read_only
def unerased_exchanges_txn(conn: Connection, *, limit: int = 1000) -> list[Exchange]:
    """Metadata of exchanges whose personal data is still held, oldest first (retention report)."""
    query = (
        select(*_METADATA_COLUMNS)
        .where(exchanges.c.erased_at.is_(None))
        .order_by(exchanges.c.created_at, exchanges.c.exchange_id)
        .limit(limit)
    )
    return [_exchange(r) for r in conn.execute(query)]


#: The set-based statements of erasure, built once (each takes the batch's ids as one
#: expanding parameter, so SQLAlchemy compiles each shape once and caches it).
_IDS: BindParameter[list[str]] = bindparam("ids", expanding=True)
_NOW = bindparam("now", type_=exchanges.c.erased_at.type)
_MARK_ERASED = (
    update(exchanges)
    .where(exchanges.c.exchange_id.in_(_IDS), exchanges.c.erased_at.is_(None))
    .values(erased_at=_NOW, updated_at=_NOW)
    .returning(exchanges.c.exchange_id)
)
_ERASE_KEYS = delete(exchange_keys).where(exchange_keys.c.exchange_id.in_(_IDS))
_ERASE_BODIES = (
    update(messages)
    .where(messages.c.exchange_id.in_(_IDS), messages.c.body.is_not(None))
    .values(body=None)
)
_OF_EXCHANGES = select(messages.c.message_id).where(messages.c.exchange_id.in_(_IDS))
_STOP_OUTBOX = (
    update(outbox)
    .where(outbox.c.message_id.in_(_OF_EXCHANGES), outbox.c.state.in_(("pending", "inflight")))
    .values(state="dead", dead_reason="EXCHANGE_ERASED", lease_until=None)
)
_STOP_PUSH = (
    update(deliveries)
    .where(
        deliveries.c.message_id.in_(_OF_EXCHANGES),
        deliveries.c.push_state.in_(("pending", "inflight")),
    )
    .values(push_state="dead", last_error="EXCHANGE_ERASED", lease_until=None)
)


def erase_exchanges_rows(
    conn: Connection,
    exchange_ids: Sequence[str],
    *,
    now: datetime,
    node: str,
    reason: str = "retention",
) -> list[str]:
    """Erase the personal data of a batch of exchanges with one statement per table.

    Destroys the wrapped data keys and the sealed bodies, dead-letters unsent
    outbox rows (``EXCHANGE_ERASED``), stops pending push deliveries, and adds
    one ``personal_data_erased`` tracking row each. Unknown and already erased
    exchanges are skipped. Returns the ids erased now, in the order given. The
    caller appends the audit entries in the same transaction. Metadata stays.
    """
    if not exchange_ids:
        return []
    ids = list(dict.fromkeys(exchange_ids))
    erased = set(conn.execute(_MARK_ERASED, {"ids": ids, "now": now}).scalars())
    if not erased:
        return []
    done = [i for i in ids if i in erased]
    conn.execute(_ERASE_KEYS, {"ids": done})
    conn.execute(_ERASE_BODIES, {"ids": done})
    conn.execute(_STOP_OUTBOX, {"ids": done})
    conn.execute(_STOP_PUSH, {"ids": done})
    insert_tracking(
        conn,
        [
            tracking_row(i, Stage.PERSONAL_DATA_ERASED, at=now, node=node, detail=reason)
            for i in done
        ],
    )
    return done


def erase_exchange_txn(
    conn: Connection,
    exchange_id: str,
    *,
    now: datetime,
    node: str,
    reason: str = "retention",
) -> bool:
    """Erase one exchange's personal data (:func:`erase_exchanges_rows` for one id).

    Idempotent: returns False when the exchange was already erased, and
    raises :class:`ExchangeNotFound` for an unknown one. Call
    ``Database.compact()`` after a purge.
    """
    if erase_exchanges_rows(conn, [exchange_id], now=now, node=node, reason=reason):
        return True
    known = conn.execute(
        select(exchanges.c.exchange_id).where(exchanges.c.exchange_id == exchange_id)
    ).first()
    if known is None:
        raise ExchangeNotFound(f"exchange {exchange_id} is not known here")
    return False
