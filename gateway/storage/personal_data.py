"""Who holds an exchange, and reading its personal data: the hand-over of a Forward, audited reads.

* :func:`hand_over` (inside the transaction that stores a Forward): the
  authority named in ForwardTo becomes the exchange's responder. On the
  responder's node it receives the exchange's Request (a new delivery of the
  stored signed bytes), and the deliveries of the exchange still waiting for
  the former responder are withdrawn: it keeps the metadata, not the
  personal data.
* :func:`former_responders` -- the authorities that forwarded an exchange
  (the senders of its Forward documents); :func:`exchange_visibility_txn`
  -- what an authority may read of an exchange (tracking).
* :func:`read_personal_data_txn` -- the ONE way a national system's read
  unseals stored documents (deliveries pulled or pushed, the renderings of a
  tracking record): each message is unsealed only if the reading authority
  is party to its exchange now (``gateway.core.access.visibility``), and
  each read is appended to the audit log (PERSONAL_DATA_READ) in the same
  transaction.

Node-to-node transfer (``service/outbound.py``) and the retention purge
unseal for the node's own work, not for a reader; they use
``storage/messages.py`` directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.engine import Connection

from gateway.core import audit, dataprotect
from gateway.core.access import Visibility, visibility
from gateway.core.audit import AuditKey, Event
from gateway.core.dataprotect import Sealer
from gateway.core.schemas import DocumentType
from gateway.storage.audit import append_audit_records_txn
from gateway.storage.db import read_only
from gateway.storage.errors import ExchangeNotFound
from gateway.storage.exchanges import exchange_txn
from gateway.storage.model import Exchange
from gateway.storage.notify import DELIVERIES_CHANNEL, notify_txn
from gateway.storage.tables import deliveries, exchange_keys, exchanges, messages

__all__ = [
    "PersonalData",
    "exchange_visibility_txn",
    "former_responders",
    "hand_over",
    "read_personal_data_txn",
]


def former_responders(conn: Connection, exchange_ids: Iterable[str]) -> dict[str, frozenset[str]]:
    """Per exchange, the authorities that forwarded it (senders of its Forward documents)."""
    ids = sorted(set(exchange_ids))
    if not ids:
        return {}
    rows = conn.execute(
        select(messages.c.exchange_id, messages.c.sender_authority)
        .where(
            messages.c.exchange_id.in_(ids),
            messages.c.document_type == DocumentType.FORWARD,
        )
        .distinct()
    )
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row.exchange_id, set()).add(row.sender_authority)
    return {exchange_id: frozenset(found.get(exchange_id, ())) for exchange_id in ids}


def hand_over(
    conn: Connection, exchange_id: str, new_responder: str, *, now: datetime, node: str
) -> None:
    """Make ``new_responder`` the exchange's responder (a Forward was accepted into it).

    Call it in the transaction that stored the Forward, after the lifecycle
    accepted it. On the new responder's node, that authority gets a delivery
    of the exchange's Request, and deliveries still waiting for the former
    responder are withdrawn (its personal-data access ends with the Forward).
    """
    former = conn.execute(
        select(exchanges.c.responder_authority).where(exchanges.c.exchange_id == exchange_id)
    ).scalar_one()
    conn.execute(
        update(exchanges)
        .where(exchanges.c.exchange_id == exchange_id)
        .values(responder_authority=new_responder, updated_at=now)
    )
    if new_responder[:2] != node:
        return
    of_exchange = select(messages.c.message_id).where(messages.c.exchange_id == exchange_id)
    conn.execute(
        delete(deliveries).where(
            and_(
                deliveries.c.authority_id == former,
                deliveries.c.delivered_at.is_(None),
                deliveries.c.message_id.in_(of_exchange),
            )
        )
    )
    requests = conn.execute(
        select(messages.c.message_id)
        .where(
            messages.c.exchange_id == exchange_id,
            messages.c.document_type == DocumentType.REQUEST,
            messages.c.direction == "in",
        )
        .order_by(messages.c.stored_at, messages.c.message_id)
    ).scalars()
    rows = [
        {
            "authority_id": new_responder,
            "message_id": message_id,
            "created_at": now,
            "delivered_at": None,
            "push_state": None,
            "attempts": 0,
            "next_attempt_at": None,
        }
        for message_id in requests
    ]
    if rows:
        from gateway.storage import messages as stored  # messages.py calls this module

        stored.lock_delivery_streams(conn, [new_responder])
        conn.execute(insert(deliveries), rows)
        notify_txn(conn, DELIVERIES_CHANNEL, [new_responder])


@read_only
def exchange_visibility_txn(
    conn: Connection, exchange_id: str, authority: str
) -> tuple[Exchange, Visibility] | None:
    """The exchange and what ``authority`` may read of it; None when nothing (or unknown)."""
    try:
        exchange = exchange_txn(conn, exchange_id)
    except ExchangeNotFound:
        return None
    visible = visibility(
        authority,
        requester=exchange.requester_authority,
        responder=exchange.responder_authority,
        former_responders=former_responders(conn, [exchange_id]).get(exchange_id, ()),
    )
    return None if visible is Visibility.NONE else (exchange, visible)


@dataclass(frozen=True)
class PersonalData:
    """What a read unsealed for one authority (bodies are personal data: never log them)."""

    #: Unsealed signed bytes by message id.
    bodies: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    #: Messages of exchanges the reader is no longer party to (PERSONAL_DATA_WITHHELD).
    withheld: frozenset[str] = frozenset()
    #: Messages whose exchange was erased (nothing left to read).
    erased: frozenset[str] = frozenset()


def read_personal_data_txn(
    conn: Connection,
    authority: str,
    message_ids: Sequence[str],
    *,
    sealer: Sealer,
    now: datetime,
    audit_key: AuditKey,
) -> PersonalData:
    """Unseal ``message_ids`` for national system ``authority``, auditing each read.

    A message is unsealed only while ``authority`` is the requester or the
    current responder of its exchange; a former responder's messages are
    ``withheld``, an erased exchange's ``erased``; unknown ids and exchanges
    the authority was never party to are left out, except a document copied
    to the reader as its addressee (a coordinator's copy of an escalation, a
    dispute or a coordinator document: it holds a delivery of it). Every unsealed message
    is appended to the audit log as PERSONAL_DATA_READ (actor: the
    authority), in this transaction.
    """
    from gateway.storage import messages as stored  # messages.py calls this module

    ids = sorted(set(message_ids))
    if not ids:
        return PersonalData()
    rows = conn.execute(
        select(
            messages.c.message_id,
            messages.c.exchange_id,
            messages.c.body,
            exchanges.c.requester_authority,
            exchanges.c.responder_authority,
            exchange_keys.c.wrapped_data_key,
            exchanges.c.blocked_at,
        )
        .join(exchanges, exchanges.c.exchange_id == messages.c.exchange_id)
        .outerjoin(exchange_keys, exchange_keys.c.exchange_id == messages.c.exchange_id)
        .where(messages.c.message_id.in_(ids))
    ).all()
    former = former_responders(conn, (r.exchange_id for r in rows))
    # Documents copied to the reader as their addressee (a coordinator's copy of an
    # escalation, a dispute or a coordinator document: gateway.service.coordinators).
    copied = set(
        conn.execute(
            select(deliveries.c.message_id).where(
                deliveries.c.authority_id == authority, deliveries.c.message_id.in_(ids)
            )
        ).scalars()
    )
    bodies: dict[str, bytes] = {}
    withheld: set[str] = set()
    erased: set[str] = set()
    keys: dict[str, bytes] = {}
    reads: list[audit.Record] = []
    by_id = {r.message_id: r for r in rows}
    for message_id in ids:
        row = by_id.get(message_id)
        if row is None:
            continue
        seen = visibility(
            authority,
            requester=row.requester_authority,
            responder=row.responder_authority,
            former_responders=former.get(row.exchange_id, frozenset()),
        )
        if seen is Visibility.NONE and message_id not in copied:
            continue
        if seen is Visibility.METADATA:
            withheld.add(message_id)
            continue
        if row.body is None or row.wrapped_data_key is None or row.blocked_at is not None:
            # Erased, or blocked before erasure ([retention] blocked_after): unreadable alike.
            erased.add(message_id)
            continue
        key = keys.get(row.exchange_id)
        if key is None:
            key = keys[row.exchange_id] = sealer.unwrap_key(row.wrapped_data_key, row.exchange_id)
        body = bodies[message_id] = dataprotect.open_sealed(
            key, row.body, stored.body_aad(message_id)
        )
        reads.append(
            audit.Record(
                Event.PERSONAL_DATA_READ,
                authority,
                row.exchange_id,
                message_id,
                audit_key.digest(body),
            )
        )
    append_audit_records_txn(conn, reads, at=now)  # one head read and insert for all
    return PersonalData(bodies, frozenset(withheld), frozenset(erased))
