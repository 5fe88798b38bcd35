"""Database access: engine set-up, the transaction runner on a dedicated thread pool, migrations.

Every piece of database work is a plain function ``def something_txn(conn, ...)``
(see ``gateway.storage.stores``) that :class:`Database` runs inside one
transaction, on its own :class:`~twisted.python.threadpool.ThreadPool` (never
the reactor's shared one), retrying it when SQLite reports a lock or
PostgreSQL a serialization failure, deadlock or unique-key race. Because a
transaction may run more than once, ``_txn`` functions must have no effect
outside the connection they are given.

Backends:

* SQLite (the embedded default, a file in the node directory): WAL journal,
  ``synchronous=FULL`` (a receipt is only given for data that survives a power
  cut), busy timeout, ``foreign_keys=ON``, ``secure_delete=ON``. SQLAlchemy
  emits the ``BEGIN``: ``BEGIN IMMEDIATE`` for write transactions (the write
  lock is taken at the start, so two writers never deadlock on a lock
  upgrade), a deferred ``BEGIN`` for functions marked :func:`read_only`.
* PostgreSQL (``postgresql+psycopg://``, psycopg 3): several gateway
  processes share one database; row claims use ``FOR UPDATE SKIP LOCKED``.

This module never imports the global reactor: :class:`Database` is given one.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, Engine, create_engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from gateway.storage.errors import (
    DatabaseBusy,
    DatabaseUnavailable,
    SchemaNotCurrent,
    TransactionRace,
    UnsupportedDatabase,
)

P = ParamSpec("P")
T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# pg_advisory_xact_lock key held while migrating ("IMIGWMIG" as an int64).
MIGRATION_LOCK_KEY = int.from_bytes(b"IMIGWMIG", "big", signed=True)

# SQLSTATEs worth retrying: serialization_failure, deadlock_detected.
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})

_READ_ONLY_OPTION = "imi_read_only"

log = Logger()


def read_only(func: Callable[P, T]) -> Callable[P, T]:
    """Mark a ``_txn`` function as read-only: on SQLite it runs under a deferred ``BEGIN``.

    Read-only transactions do not take SQLite's write lock, so they run in
    parallel with a writer (WAL readers see the last committed state).
    """
    func._imi_read_only = True  # type: ignore[attr-defined]
    return func


def _is_read_only(func: Callable[..., Any]) -> bool:
    return bool(getattr(func, "_imi_read_only", False))


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
    return create_engine(parsed, pool_pre_ping=True, pool_recycle=3600, **common)


def _install_sqlite_hooks(engine: Engine, busy_timeout_ms: int, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Take transaction control away from the sqlite3 module: it would
        # otherwise BEGIN lazily (and DEFERRED) before DML only.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA secure_delete=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, TransactionRace):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    if isinstance(orig, sqlite3.OperationalError):
        message = str(orig).lower()
        return "database is locked" in message or "database is busy" in message
    return False


def _describe(exc: BaseException) -> str:
    """A short description without SQL or parameters.

    SQLite's messages never quote values ("no such table: x"), so they are
    kept; PostgreSQL's may ("Failing row contains ..."), so only the error
    class and SQLSTATE are.
    """
    orig = getattr(exc, "orig", None) or exc
    name = type(orig).__name__
    if isinstance(orig, sqlite3.Error):
        return f"{name}: {orig}"
    sqlstate = getattr(orig, "sqlstate", None)
    return f"{name} (SQLSTATE {sqlstate})" if sqlstate else name


class _Reactor(Protocol):
    def callFromThread(self, f: Callable[..., object], *args: object, **kw: object) -> None: ...

    def addSystemEventTrigger(
        self, phase: str, eventType: str, callable: Callable[..., Any], *args: object
    ) -> Any: ...

    def removeSystemEventTrigger(self, triggerID: Any) -> None: ...


class Database(Service):
    """The gateway's database: an engine, a dedicated thread pool and the transaction runner.

    Use it as a Twisted service (``startService``/``stopService`` in the
    node's ``MultiService``) or call :meth:`start`/:meth:`stop` directly.
    :meth:`run_txn_sync` works without the thread pool (CLI, tests, start-up).
    """

    name = "database"

    def __init__(
        self,
        url: str | URL,
        *,
        reactor: _Reactor,
        threads: int = 4,
        retries: int = 5,
        busy_timeout_ms: int = 30_000,
        sqlite_synchronous: str = "FULL",
        engine: Engine | None = None,
    ) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.engine = engine or create_engine_for(
            url,
            pool_size=threads,
            busy_timeout_ms=busy_timeout_ms,
            sqlite_synchronous=sqlite_synchronous,
        )
        self.dialect_name: str = self.engine.dialect.name
        self._reactor = reactor
        self._threads = threads
        self._retries = retries
        self._pool: ThreadPool | None = None
        self._shutdown_trigger: Any = None

    # --- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Start the thread pool (idempotent) and stop it when the reactor shuts down."""
        if self._pool is not None:
            return
        pool = ThreadPool(minthreads=1, maxthreads=self._threads, name="imi-gateway-db")
        pool.start()
        self._pool = pool
        self._shutdown_trigger = self._reactor.addSystemEventTrigger(
            "during", "shutdown", self._shutdown
        )

    def stop(self) -> None:
        """Stop the thread pool (waiting for running transactions) and close connections."""
        if self._shutdown_trigger is not None:
            self._reactor.removeSystemEventTrigger(self._shutdown_trigger)
            self._shutdown_trigger = None
        self._shutdown()

    def _shutdown(self) -> None:
        self._shutdown_trigger = None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
        self.engine.dispose()

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self.start()

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        self.stop()

    # --- transactions -------------------------------------------------------

    def run_txn(
        self,
        func: Callable[Concatenate[Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Deferred[T]:
        """Run ``func(conn, *args, **kwargs)`` in one transaction on the database thread pool."""
        if self._pool is None:
            return fail(DatabaseUnavailable("the database thread pool is not running"))
        return deferToThreadPool(
            self._reactor,  # type: ignore[arg-type]
            self._pool,
            self.run_txn_sync,  # type: ignore[arg-type]
            func,
            *args,
            **kwargs,
        )

    def run_txn_sync(
        self,
        func: Callable[Concatenate[Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``func(conn, *args, **kwargs)`` in one transaction in the calling thread.

        The transaction commits when ``func`` returns and rolls back when it
        raises. Lock timeouts, serialization failures, deadlocks and
        :class:`TransactionRace` are retried up to ``retries`` times with a
        short randomised back-off, then reported as :class:`DatabaseBusy`;
        other operational errors become :class:`DatabaseUnavailable`. Errors
        raised by ``func`` itself (``GatewayError`` subclasses) pass through.
        """
        read = _is_read_only(func)
        attempt = 0
        while True:
            try:
                with self.engine.connect() as conn:
                    if read:
                        conn.execution_options(**{_READ_ONLY_OPTION: True})
                    with conn.begin():
                        return func(conn, *args, **kwargs)
            except Exception as exc:
                if not _retryable(exc):
                    if isinstance(exc, OperationalError):
                        raise DatabaseUnavailable(
                            f"database error in {_name(func)}: {_describe(exc)}"
                        ) from exc
                    raise
                if attempt >= self._retries:
                    raise DatabaseBusy(
                        f"{_name(func)} gave up after {attempt + 1} attempts: {_describe(exc)}"
                    ) from exc
                attempt += 1
                log.debug(
                    "Retrying {txn} (attempt {attempt}): {reason}",
                    txn=_name(func),
                    attempt=attempt,
                    reason=_describe(exc),
                )
                # Runs on a database thread (or the CLI), never on the reactor.
                time.sleep(random.uniform(0.0, 0.005 * 2**attempt))  # noqa: S311

    # --- schema ---------------------------------------------------------------

    def migrate(self) -> None:
        """Upgrade the schema to the newest migration (a no-op when it is current).

        Runs in one transaction. On PostgreSQL a transaction-scoped advisory
        lock makes concurrent calls from several processes safe (the later one
        waits, then finds the schema current); on SQLite ``BEGIN IMMEDIATE``
        serialises them.
        """
        config = alembic_config()
        try:
            with self.engine.begin() as conn:
                if self.dialect_name == "postgresql":
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except OperationalError as exc:
            raise DatabaseUnavailable(f"cannot migrate the database: {_describe(exc)}") from exc

    def current_revision(self) -> str | None:
        """The schema revision the database is at (``None`` for an empty database)."""
        with self.engine.connect() as conn:
            conn.execution_options(**{_READ_ONLY_OPTION: True})
            return MigrationContext.configure(conn).get_current_revision()

    def check_schema(self) -> None:
        """Raise :class:`SchemaNotCurrent` unless the schema is at the newest migration."""
        head = head_revision()
        current = self.current_revision()
        if current != head:
            raise SchemaNotCurrent(
                f"the database schema is at {current or 'nothing'}, this gateway needs {head}: "
                "run the migrations"
            )

    # --- maintenance ------------------------------------------------------------

    def compact_sync(self) -> None:
        """Make erased data physically go away: run after a retention purge.

        SQLite: checkpoint the WAL into the database file and truncate it
        (``secure_delete`` has already zeroed the freed pages). PostgreSQL:
        ``VACUUM`` the tables that held sealed data and wrapped keys.
        """
        if self.dialect_name == "sqlite":
            raw = self.engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                cursor.close()
            finally:
                raw.close()
        else:
            with self.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql("VACUUM exchanges, messages")

    def compact(self) -> Deferred[None]:
        """:meth:`compact_sync` on the database thread pool."""
        if self._pool is None:
            return fail(DatabaseUnavailable("the database thread pool is not running"))
        return deferToThreadPool(
            self._reactor,  # type: ignore[arg-type]
            self._pool,
            self.compact_sync,
        )


def _name(func: Callable[..., Any]) -> str:
    return getattr(func, "__name__", type(func).__name__)


def alembic_config() -> Config:
    """An Alembic configuration for the migrations shipped in this package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    """The newest migration revision shipped with this gateway."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
