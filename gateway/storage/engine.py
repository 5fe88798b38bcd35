"""SQLAlchemy engines for the node's database: URL normalisation, pool and SQLite settings (WAL, busy timeout, synchronous)."""

from __future__ import annotations

import random
import sqlite3
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, create_engine, make_url

from gateway.storage.errors import (
    DatabaseDriverMissing,
    UnsupportedDatabase,
)

#: Execution option of a read-only transaction: SQLite begins it with a plain BEGIN.
READ_ONLY_OPTION = "imi_read_only"


def normalise_url(url: str | URL) -> URL:
    """Parse ``url`` and pick our drivers: psycopg 3 for PostgreSQL, sqlite3 for SQLite."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    driver = parsed.get_driver_name()
    if backend == "postgresql":
        if "+" not in parsed.drivername:
            parsed = parsed.set(drivername="postgresql+psycopg")
        elif driver != "psycopg":
            raise UnsupportedDatabase(f"PostgreSQL driver {driver!r} is not supported: use psycopg")
    elif backend == "sqlite":
        if driver != "pysqlite":
            raise UnsupportedDatabase(f"SQLite driver {driver!r} is not supported")
        if parsed.database in (None, "", ":memory:") or "mode=memory" in str(parsed):
            raise UnsupportedDatabase("an in-memory SQLite database is not supported: use a file")
    else:
        raise UnsupportedDatabase(f"database backend {backend!r} is not supported")
    return parsed


def create_engine_for(
    url: str | URL,
    *,
    pool_size: int = 5,
    busy_timeout_ms: int = 30_000,
    sqlite_synchronous: str = "FULL",
    echo: bool = False,
) -> Engine:
    """An engine for ``url`` with the gateway's connection settings.

    SQLite gets its pragmas on every new connection and SQLAlchemy-controlled
    ``BEGIN IMMEDIATE`` / ``BEGIN`` (see the module docstring); PostgreSQL gets
    a pre-ping pool. Statement parameters are hidden from logs and exception
    messages (they may hold personal data, even if sealed).
    """
    parsed = normalise_url(url)
    common: dict[str, Any] = {
        "hide_parameters": True,
        "echo": echo,
        "pool_size": pool_size,
        "max_overflow": 4,
        "pool_timeout": 30,
    }
    if parsed.get_backend_name() == "sqlite":
        if sqlite_synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise UnsupportedDatabase("sqlite_synchronous must be FULL, NORMAL or EXTRA")
        engine = create_engine(parsed, connect_args={"timeout": busy_timeout_ms / 1000.0}, **common)
        _install_sqlite_hooks(engine, busy_timeout_ms, sqlite_synchronous.upper())
        return engine
    try:
        return create_engine(
            parsed,
            pool_pre_ping=True,
            pool_recycle=3600,
            # Fail fast when the server does not answer (the default waits for TCP).
            connect_args={"connect_timeout": 10},
            **common,
        )
    except ImportError as exc:
        raise DatabaseDriverMissing(
            f"database.url names PostgreSQL, but its driver ({exc.name or 'psycopg'}) is not "
            "installed: pip install 'imi-gateway[postgres]'"
        ) from None


# What a failed connection says, and what we report (never the URL's password).
_CONNECT_CAUSES = (
    ("password authentication failed", "authentication failed"),
    ("authentication failed", "authentication failed"),
    ("no password supplied", "authentication failed (no password supplied)"),
    ("connection refused", "connection refused"),
    ("timeout expired", "connection timed out"),
    ("timed out", "connection timed out"),
    ("failed to resolve host", "host name not found"),
    ("could not translate host name", "host name not found"),
    ("name or service not known", "host name not found"),
    ("no route to host", "no route to host"),
    ("network is unreachable", "network unreachable"),
    ("does not exist", "database or role does not exist"),
    ("no pg_hba.conf entry", "refused by the server's pg_hba.conf"),
    ("the database system is starting up", "the server is starting up"),
    ("the database system is shutting down", "the server is shutting down"),
    ("too many clients", "too many connections"),
    ("unable to open database file", "cannot open the database file"),
)


def connect_cause(exc: BaseException) -> str | None:
    """The cause of a failed connection in a few fixed words ("connection refused"), or None.

    Only fixed phrases are returned, never the driver's message itself (which
    may quote the user name, the database name or a value).
    """
    message = str(getattr(exc, "orig", None) or exc).lower()
    return next((cause for needle, cause in _CONNECT_CAUSES if needle in message), None)


def describe_server(url: str | URL) -> str:
    """``host:port`` of a PostgreSQL URL (the socket directory or "localhost" by default), or
    the file of a SQLite URL; never the user or the password."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.database)
    host = parsed.host or str(parsed.query.get("host", "") or "localhost")
    return f"{host}:{parsed.port or 5432}"


def _set_wal(cursor: sqlite3.Cursor, busy_timeout_ms: int) -> None:
    """Switch to WAL. On a brand-new file two connections can race for it, and
    SQLite answers "database is locked" without calling the busy handler, so
    wait and retry here (bounded by the busy timeout)."""
    deadline = time.monotonic() + busy_timeout_ms / 1000.0
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01 + random.random() * 0.02)  # noqa: S311 (jitter)


def _install_sqlite_hooks(engine: Engine, busy_timeout_ms: int, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Take transaction control away from the sqlite3 module: it would
        # otherwise BEGIN lazily (and DEFERRED) before DML only.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            _set_wal(cursor, busy_timeout_ms)
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA secure_delete=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
