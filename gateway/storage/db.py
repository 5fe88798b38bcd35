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
  The write transactions of one :class:`Database` take turns on an
  in-process lock before ``BEGIN IMMEDIATE``: SQLite's busy handler sleeps in
  growing steps and would leave the lock idle while every waiting writer
  sleeps; other processes still meet the busy timeout. Write transactions
  requested with :meth:`Database.run_txn` while a commit runs share the next
  transaction (group commit), each in its own SAVEPOINT, and are
  acknowledged only after that COMMIT (see ``_GroupCommit`` and
  docs/performance.md).
* PostgreSQL (``postgresql+psycopg://``, psycopg 3): several gateway
  processes share one database; row claims use ``FOR UPDATE SKIP LOCKED``.

This module never imports the global reactor: :class:`Database` is given one.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from gateway.storage.engine import (
    READ_ONLY_OPTION,
    connect_cause,
    create_engine_for,
    describe_server,
)
from gateway.storage.errors import (
    DatabaseBusy,
    DatabaseSchemaTooNew,
    DatabaseUnavailable,
    SchemaNotCurrent,
    TransactionRace,
)

P = ParamSpec("P")
T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# pg_advisory_xact_lock key held while migrating ("IMIGWMIG" as an int64).
MIGRATION_LOCK_KEY = int.from_bytes(b"IMIGWMIG", "big", signed=True)

#: PostgreSQL, after a purge: VACUUM the table of sealed bodies (ciphertext whose key is gone
#: may stay in free space until reused), rewrite the small table of wrapped data keys (no copy
#: of an erased key may stay in a page's free space). The exchange metadata, kept forever,
#: is never rewritten: the keys live in a table of their own.
VACUUMED_TABLES = ("messages",)
REWRITTEN_TABLES = ("exchange_keys",)

# SQLSTATEs worth retrying: serialization_failure, deadlock_detected.
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})


log = Logger()


def read_only(func: Callable[P, T]) -> Callable[P, T]:
    """Mark a ``_txn`` function as read-only: on SQLite it runs under a deferred ``BEGIN``.

    Read-only transactions do not take SQLite's write lock, so they run in
    parallel with a writer (WAL readers see the last committed state).
    """
    func._imi_read_only = True  # type: ignore[attr-defined]  # a marker on the function object
    return func


def _is_read_only(func: Callable[..., Any]) -> bool:
    return bool(getattr(func, "_imi_read_only", False))


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

    def callLater(self, delay: float, f: Callable[..., object], *args: object) -> Any: ...

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
        inline: bool = False,
    ) -> None:
        """``inline``: :meth:`run_txn` runs each transaction at once on the calling
        thread (unit tests on ``twisted.internet.task.Clock``: no thread pool, no
        real reactor)."""
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.engine = engine or create_engine_for(
            url,
            pool_size=threads,
            busy_timeout_ms=busy_timeout_ms,
            sqlite_synchronous=sqlite_synchronous,
        )
        self.dialect_name: str = self.engine.dialect.name
        #: Where the database is, for messages: ``host:port`` or the SQLite file (no credentials).
        self.server = describe_server(self.engine.url)
        # SQLite has one writer at a time. Writers of this process queue on this lock
        # instead of in SQLite's busy handler, which sleeps in growing steps (1, 2, 5,
        # 10 ... 100 ms) and leaves the lock idle while every waiter sleeps.
        self._write_lock: threading.Lock | None = (
            threading.Lock() if self.dialect_name == "sqlite" else None
        )
        #: Group commit of the write transactions run with :meth:`run_txn` (SQLite only).
        self._group = _GroupCommit(self) if self._write_lock is not None else None
        self._reactor = reactor
        self._inline = inline
        self._threads = threads
        self._retries = retries
        self._pool: ThreadPool | None = None
        self._shutdown_trigger: Any = None
        self._wal_warning_logged = False

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
        super().startService()  # type: ignore[no-untyped-call]  # Service.startService is untyped
        self.start()

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]  # Service.stopService is untyped
        self.stop()

    # --- transactions -------------------------------------------------------

    def run_txn(
        self,
        func: Callable[Concatenate[Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Deferred[T]:
        """Run ``func(conn, *args, **kwargs)`` in one transaction on the database thread pool."""
        if self._inline:
            try:
                result = self.run_txn_sync(func, *args, **kwargs)
            except BaseException:
                return fail()
            return succeed(result)
        if self._pool is None:
            return fail(DatabaseUnavailable("the database thread pool is not running"))
        if self._group is not None and not _is_read_only(func):
            return self._group.submit(func, args, kwargs)
        return deferToThreadPool(
            self._reactor,  # type: ignore[arg-type]  # a _Reactor: the methods deferToThreadPool uses
            self._pool,
            self.run_txn_sync,  # type: ignore[arg-type]  # ParamSpec through deferToThreadPool
            func,
            *args,
            **kwargs,
        )

    def _run_group_sync(self, batch: list[_Pending]) -> list[tuple[bool, Any]]:
        """Run ``batch`` in ONE write transaction, each function inside its own SAVEPOINT.

        Returns ``(True, result)`` or ``(False, Failure)`` per function, in
        order. A function that raises is rolled back to its savepoint alone;
        the others commit together. A function that reports a retryable race
        runs again afterwards in a transaction of its own. When BEGIN or
        COMMIT fails, the whole batch is retried (``retries`` times) or every
        function gets the error; so does every function when one meets a
        database operational error (I/O, disk full: SQLite may have rolled the
        whole transaction back), and nothing of the batch is committed.
        """
        assert self._write_lock is not None
        if len(batch) == 1:  # alone: its own transaction, no savepoint needed
            item = batch[0]
            try:
                return [(True, self.run_txn_sync(item.func, *item.args, **item.kwargs))]
            except Exception:
                return [(False, Failure())]  # type: ignore[no-untyped-call]  # Failure() is untyped
        attempt = 0
        while True:
            outcomes: list[tuple[bool, Any] | None] = []
            try:
                with self._write_lock, self.engine.connect() as conn, conn.begin():
                    for item in batch:
                        try:
                            with conn.begin_nested():
                                outcomes.append((True, item.func(conn, *item.args, **item.kwargs)))
                        except Exception as exc:
                            if isinstance(exc, OperationalError) and not _retryable(exc):
                                # SQLite may have rolled the whole transaction back (I/O
                                # error, disk full): fail the batch rather than go on.
                                raise
                            outcomes.append(None if _retryable(exc) else (False, _failure(exc)))
                break
            except Exception as exc:
                if not _retryable(exc) or attempt >= self._retries:
                    if _retryable(exc):
                        exc = DatabaseBusy(
                            f"group commit gave up after {attempt + 1} attempts: {_describe(exc)}"
                        )
                    failure = _failure(exc, "group commit")
                    return [(False, failure)] * len(batch)
                attempt += 1
                time.sleep(random.uniform(0.0, 0.005 * 2**attempt))  # noqa: S311
        done: list[tuple[bool, Any]] = []
        for item, outcome in zip(batch, outcomes, strict=True):
            if outcome is None:  # a race: once more, alone (run_txn_sync retries it)
                try:
                    outcome = (True, self.run_txn_sync(item.func, *item.args, **item.kwargs))
                except Exception as exc:
                    outcome = (False, _failure(exc))
            done.append(outcome)
        return done

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
        serialise = self._write_lock if not read and self._write_lock is not None else None
        attempt = 0
        while True:
            try:
                with serialise or contextlib.nullcontext(), self.engine.connect() as conn:
                    if read:
                        conn.execution_options(**{READ_ONLY_OPTION: True})
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

    def migrate(self) -> list[str]:
        """Upgrade the schema to the newest migration; the revisions applied (none when current).

        Runs in one transaction. On PostgreSQL a transaction-scoped advisory
        lock makes concurrent calls from several processes safe (the later one
        waits, then finds the schema current); on SQLite ``BEGIN IMMEDIATE``
        serialises them. A schema newer than this gateway's migrations is
        refused (:class:`DatabaseSchemaTooNew`), and each run is logged.
        """
        config = alembic_config()
        try:
            with self.engine.begin() as conn:
                if self.dialect_name == "postgresql":
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                current = MigrationContext.configure(conn).get_current_revision()
                pending = pending_revisions(current)
                if pending:
                    log.info(
                        "Migrating the database schema from {current} to {head} "
                        "({count} migration(s): {revisions})",
                        current=current or "nothing",
                        head=pending[-1],
                        count=len(pending),
                        revisions=" ".join(pending),
                    )
                    config.attributes["connection"] = conn
                    command.upgrade(config, "head")
        except OperationalError as exc:
            raise self.unavailable("cannot migrate the database", exc) from None
        if pending:
            log.info("Database schema migrated to {head}", head=pending[-1])
        return pending

    def unavailable(self, what: str, exc: BaseException) -> DatabaseUnavailable:
        """:class:`DatabaseUnavailable` for ``exc``, naming the server and the cause (never the
        password, the SQL or its parameters)."""
        cause = connect_cause(exc)
        if cause is not None:
            return DatabaseUnavailable(f"{what}: {self.server}: {cause}")
        return DatabaseUnavailable(f"{what}: {self.server}: {_describe(exc)}")

    def current_revision(self) -> str | None:
        """The schema revision the database is at (``None`` for an empty database)."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{READ_ONLY_OPTION: True})
                return MigrationContext.configure(conn).get_current_revision()
        except OperationalError as exc:
            raise self.unavailable("cannot read the schema revision", exc) from None

    def schema_status(self) -> SchemaStatus:
        """Where the schema is, the newest revision and what :meth:`migrate` would apply."""
        current = self.current_revision()
        return SchemaStatus(current, head_revision(), tuple(pending_revisions(current)))

    def check_schema(self) -> None:
        """Raise :class:`SchemaNotCurrent` unless the schema is at the newest migration
        (:class:`DatabaseSchemaTooNew` when it is newer than this gateway)."""
        head = head_revision()
        current = self.current_revision()
        pending_revisions(current)  # a revision this gateway does not know: too new
        if current != head:
            raise SchemaNotCurrent(
                f"the database schema is at {current or 'nothing'}, this gateway needs {head}: "
                "run the migrations"
            )

    # --- maintenance ------------------------------------------------------------

    def compact_sync(self) -> None:
        """Make erased data physically go away: run after a retention purge.

        SQLite: ``secure_delete`` has already overwritten the freed cells and
        pages with zeros; checkpoint the WAL into the database file and
        truncate it, so no older page version survives in the ``-wal`` file.

        PostgreSQL: ``VACUUM`` the messages (and their TOAST table), so dead
        row versions of sealed bodies are pruned (their bytes may stay in free
        space until reused: ciphertext whose key is gone); ``VACUUM FULL``
        ``exchange_keys``, which rewrites that table so that no copy of an
        erased wrapped data key stays in a page's free space (it holds only
        the keys of exchanges whose data is still held, short rows, so the
        rewrite is brief; creating an exchange waits for it); then
        ``CHECKPOINT``, switch to a new WAL segment and ``CHECKPOINT`` again,
        so the segments that recorded the erased rows are no longer needed
        and the server removes them (with ``wal_recycle = off`` it deletes
        them; otherwise it renames them for reuse, see docs/data-protection.md).
        Without the privileges for the last three steps (``pg_checkpoint``
        role, ``EXECUTE`` on ``pg_switch_wal``) they are skipped and logged
        once: the server's own checkpoints remove the segments later.
        """
        if self.dialect_name == "sqlite":
            raw = self.engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                cursor.close()
            finally:
                raw.close()
            return
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql(f"VACUUM {', '.join(VACUUMED_TABLES)}")
            conn.exec_driver_sql(f"VACUUM FULL {', '.join(REWRITTEN_TABLES)}")
            try:
                conn.exec_driver_sql("CHECKPOINT")
                conn.exec_driver_sql("SELECT pg_switch_wal()")
                conn.exec_driver_sql("CHECKPOINT")
            except DBAPIError as exc:
                if not self._wal_warning_logged:
                    self._wal_warning_logged = True
                    log.warn(
                        "After a purge the gateway cannot force a checkpoint and a WAL switch "
                        "({reason}): WAL segments holding erased rows stay until the server's "
                        "next checkpoints; grant pg_checkpoint and EXECUTE on pg_switch_wal",
                        reason=_describe(exc),
                    )

    def run_blocking(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        """``func(*args, **kwargs)`` on the database thread pool (at once when ``inline``):
        database work that is not one transaction (a session lock, see ``storage.run_lock``)."""
        if self._inline:
            return maybeDeferred(func, *args, **kwargs)
        if self._pool is None:
            return fail(DatabaseUnavailable("the database thread pool is not running"))
        return deferToThreadPool(
            self._reactor,  # type: ignore[arg-type]  # a _Reactor: the methods deferToThreadPool uses
            self._pool,
            func,
            *args,
            **kwargs,
        )

    def compact(self) -> Deferred[None]:
        """:meth:`compact_sync` on the database thread pool (at once when ``inline``)."""
        if self._inline:
            return maybeDeferred(self.compact_sync)
        if self._pool is None:
            return fail(DatabaseUnavailable("the database thread pool is not running"))
        return deferToThreadPool(
            self._reactor,  # type: ignore[arg-type]  # a _Reactor: the methods deferToThreadPool uses
            self._pool,
            self.compact_sync,
        )


@dataclass(frozen=True)
class SchemaStatus:
    """The database schema's revision, the newest this gateway has, and the ones to apply."""

    current: str | None
    head: str | None
    pending: tuple[str, ...]


@dataclass
class _Pending:
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    deferred: Deferred[Any]


def _failure(exc: BaseException, where: str | None = None) -> Failure:
    """``exc`` as run_txn_sync would report it: non-retryable operational errors become
    DatabaseUnavailable (without SQL or parameters)."""
    if isinstance(exc, OperationalError):
        exc = DatabaseUnavailable(f"database error in {where or 'a transaction'}: {_describe(exc)}")
    return Failure(exc)  # type: ignore[no-untyped-call]  # Failure() is untyped


class _GroupCommit:
    """Group commit for SQLite: write transactions queued meanwhile share one COMMIT.

    SQLite has a single writer and every COMMIT waits for the disk
    (``synchronous=FULL``). While one batch commits, the write transactions
    requested meanwhile queue here; the next batch runs them all in one
    transaction, each in its own SAVEPOINT (so one that fails is rolled back
    alone), and every caller's Deferred fires only after that COMMIT -- an
    acknowledgement still means the data is on disk. Calls made in the same
    reactor turn always share a batch. Runs on the reactor thread except for
    :meth:`Database._run_group_sync`.
    """

    MAX_BATCH = 100

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: list[_Pending] = []
        self._busy = False
        self._scheduled = False
        self.batches = 0
        self.transactions = 0

    def submit(self, func: Callable[..., Any], args: Any, kwargs: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self._queue.append(_Pending(func, tuple(args), dict(kwargs), d))
        self._kick()
        return d

    def _kick(self) -> None:
        if self._busy or self._scheduled or not self._queue:
            return
        self._scheduled = True
        self._db._reactor.callLater(0, self._start)

    def _start(self) -> None:
        self._scheduled = False
        if self._busy or not self._queue:
            return
        batch = self._queue[: self.MAX_BATCH]
        del self._queue[: self.MAX_BATCH]
        pool = self._db._pool
        if pool is None:
            for item in batch:
                item.deferred.errback(
                    DatabaseUnavailable("the database thread pool is not running")
                )
            self._kick()
            return
        self._busy = True
        self.batches += 1
        self.transactions += len(batch)
        d = deferToThreadPool(
            self._db._reactor,  # type: ignore[arg-type]  # a _Reactor: the methods deferToThreadPool uses
            pool,
            self._db._run_group_sync,
            batch,
        )
        d.addBoth(self._finished, batch)

    def _finished(self, outcome: Any, batch: list[_Pending]) -> None:
        self._busy = False
        if isinstance(outcome, Failure):  # the thread itself failed
            results: list[tuple[bool, Any]] = [(False, outcome)] * len(batch)
        else:
            results = outcome
        for item, (ok, value) in zip(batch, results, strict=True):
            if ok:
                item.deferred.callback(value)
            else:
                item.deferred.errback(value)
        self._kick()


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


def pending_revisions(current: str | None) -> list[str]:
    """The migrations to apply, oldest first, to bring a schema at ``current`` to the head.

    Raises :class:`DatabaseSchemaTooNew` when ``current`` is not a revision
    of this gateway (a newer version migrated the database).
    """
    script = ScriptDirectory.from_config(alembic_config())
    if current is not None:
        try:
            known = script.get_revision(current)
        except Exception:
            known = None
        if known is None:
            raise DatabaseSchemaTooNew(
                f"the database schema is at revision {current}, which this gateway does not "
                f"know (its newest is {script.get_current_head()}): a newer gateway migrated it; "
                "run that version or restore a backup taken before"
            )
    revisions = list(script.iterate_revisions("heads", current or "base"))
    return [r.revision for r in reversed(revisions)]
