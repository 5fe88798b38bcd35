"""One process at a time runs a timer's work (retention, audit checkpoints) on a shared database.

Several processes of one node (``imi-gateway run --workers N``, or several
hosts) share one PostgreSQL database and each runs the node's timers. A
timer's run spans many transactions, so a :class:`RunLock` holds a
*session-level* advisory lock (``pg_try_advisory_lock``) on a connection of
its own for the whole run and lets go at its end. A process that finds the
lock taken skips that turn: another process is doing the work, and the next
turn looks again. A process that dies mid-run loses its connection, and
PostgreSQL releases the lock with it (no lease to wait out); whatever the run
left half done is idempotent and finished by the next run, in any process.

SQLite is one process's database: there the lock is always free and takes
no connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from twisted.logger import Logger

from gateway.storage.db import Database

__all__ = ["RunLock", "run_lock_key"]

log = Logger()

T = TypeVar("T")


def run_lock_key(name: str) -> int:
    """The advisory-lock key of a timer: its (at most 8 character) name as an int64."""
    raw = name.encode("ascii")
    if not 0 < len(raw) <= 8:
        raise ValueError("a run-lock name has 1 to 8 ASCII characters")
    return int.from_bytes(raw.ljust(8, b"_"), "big", signed=True)


def _take(engine: Engine, key: int) -> Connection | None:
    """A connection holding the session lock ``key``, or None if another session holds it."""
    holder = engine.connect()
    try:
        taken = holder.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
        holder.commit()
    except BaseException:
        holder.invalidate()  # never back to the pool in an unknown lock state
        holder.close()
        raise
    if not taken:
        holder.close()
        return None
    return holder


def _let_go(holder: Connection, key: int) -> None:
    try:
        holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        holder.commit()
    except BaseException:
        holder.invalidate()  # closing the session releases the lock
        raise
    finally:
        holder.close()


class RunLock:
    """Runs a timer's work in at most one process of the node at a time (see the module docstring)."""

    def __init__(self, db: Database, name: str) -> None:
        self._db = db
        self.name = name
        self.key = run_lock_key(name)

    async def run(self, work: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        """``(True, await work())`` with the lock held, or ``(False, None)`` when another
        process holds it (that turn is skipped)."""
        if self._db.dialect_name != "postgresql":
            return True, await work()
        holder: Connection | None = await self._db.run_blocking(_take, self._db.engine, self.key)
        if holder is None:
            log.debug("{name}: another process runs it now; skipped", name=self.name)
            return False, None
        try:
            return True, await work()
        finally:
            await self._db.run_blocking(_let_go, holder, self.key)
