"""Fixtures for the storage tests: every test runs against SQLite and PostgreSQL.

The PostgreSQL variant creates a database with a random name on the server
given by IMI_TEST_POSTGRES_URL (through an AUTOCOMMIT connection) and drops it
afterwards, so each test has an isolated, empty database.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from gateway.core import dataprotect
from gateway.storage.db import Database
from gateway.storage.model import ExchangeInfo, InboundEnvelope, InboundPayload, Submission
from tests.conftest import postgres_url

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NODE = "NO"
PEER = "PT"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'node.db'}"
        return
    server = make_url(postgres_url())
    name = f"imi_test_{secrets.token_hex(6)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def make_database(db_url: str) -> Iterator:
    """A factory of Database objects on the test database (several = several processes)."""
    from twisted.internet import reactor

    made: list[Database] = []

    def make(**kw) -> Database:
        db = Database(db_url, reactor=reactor, **kw)
        made.append(db)
        return db

    yield make
    for db in made:
        db.stop()


@pytest.fixture
def db(make_database) -> Database:
    """A migrated database."""
    database = make_database()
    database.migrate()
    return database


@pytest.fixture
def sealer() -> dataprotect.Sealer:
    return dataprotect.Sealer(dataprotect.new_kek())


def exchange_info(exchange_id: str = "EX-1", **kw) -> ExchangeInfo:
    values = {
        "exchange_id": exchange_id,
        "requester_authority": "NO-HELSEDIR",
        "responder_authority": "PT-OMD",
        "requester_node": NODE,
        "responder_node": PEER,
        "area": "PQ",
        "question_set": "doctors",
        "catalogue_version": "1",
    }
    values.update(kw)
    return ExchangeInfo(**values)


def submission(
    message_id: str = "MSG-1",
    *,
    exchange_id: str = "EX-1",
    body: bytes | None = None,
    document_type: str = "Request",
    **kw,
) -> Submission:
    sub = Submission(
        message_id=message_id,
        exchange=exchange_info(exchange_id),
        document_type=document_type,
        sender_authority="NO-HELSEDIR",
        receiver_authority="PT-OMD",
        peer_node=PEER,
        document_created_at=T0 - timedelta(seconds=5),
        body=body
        if body is not None
        else f"<Request id='{message_id}'>Kari Nordmann</Request>".encode(),
        receipt=f"<Receipt for='{message_id}'/>".encode(),
    )
    return replace(sub, **kw) if kw else sub


def payload(
    message_id: str = "IN-1",
    *,
    exchange_id: str = "EX-9",
    body: bytes | None = None,
    receiver: str = "NO-HELSEDIR",
    push: bool = False,
    document_type: str = "Request",
) -> InboundPayload:
    return InboundPayload(
        message_id=message_id,
        exchange=exchange_info(
            exchange_id,
            requester_authority="PT-OMD",
            responder_authority=receiver,
            requester_node=PEER,
            responder_node=NODE,
        ),
        document_type=document_type,
        sender_authority="PT-OMD",
        receiver_authority=receiver,
        document_created_at=T0 - timedelta(seconds=3),
        body=body
        if body is not None
        else f"<Request id='{message_id}'>Joana Silva</Request>".encode(),
        push=push,
    )


def envelope(
    envelope_id: str, *payloads: InboundPayload, sha256: str | None = None
) -> InboundEnvelope:
    return InboundEnvelope(
        envelope_id=envelope_id,
        peer_node=PEER,
        sha256=sha256 or (envelope_id.encode().hex() * 4)[:64].ljust(64, "0"),
        receipt=f"<EnvelopeReceipt for='{envelope_id}'/>".encode(),
        payloads=payloads,
    )
