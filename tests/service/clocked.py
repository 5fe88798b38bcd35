"""One set-up for a service tested on its own: ``task.Clock``, file-backed SQLite run inline.

:func:`clocked_node` gives a :class:`~gateway.service.runtime.Runtime` whose
clock is a ``twisted.internet.task.Clock`` (reactor time and the wall clock
move together, starting at ``T0``), whose database is a file-backed SQLite
database whose transactions run inline, and whose CPU work runs inline. No
real reactor, no threads, no sleeps: a test advances ``node.clock`` and the
service's timers, retries and waits follow it. ``clock.advance(n)`` runs every
timer due within ``n`` seconds at the *end* time; to let a chain of timers run
each at its own time, step through: ``clock.pump([1.0] * n)``.

:class:`ScriptedClient` stands in for the HTTPS client of a peer sender or a
pusher: each POST takes the next scripted answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from gateway.core.dataprotect import Sealer, new_kek
from gateway.service.metrics import NodeMetrics
from gateway.service.runtime import ReactorClock, Runtime, inline
from gateway.storage.db import Database
from gateway.transport.client import HTTPAnswer
from tests.storage.conftest import NODE, T0
from tests.test_directory_store import make_node, signer


@dataclass
class ClockedNode:
    """A node's runtime on a deterministic clock (see :func:`clocked_node`)."""

    clock: Clock
    db: Database
    runtime: Runtime

    def stop(self) -> None:
        """Close the database; the clock must hold no timer any more (nothing left running)."""
        self.db.stop()
        assert not self.clock.getDelayedCalls(), self.clock.getDelayedCalls()


def clocked_node(tmp_path: Path, *, node_id: str = NODE) -> ClockedNode:
    """A migrated file-backed SQLite database and a Runtime on ``task.Clock`` at ``T0``."""
    clock = Clock()
    clock.advance(T0.timestamp())
    db = Database(f"sqlite:///{tmp_path / 'node.db'}", reactor=clock, inline=True)
    db.migrate()
    runtime = Runtime(
        node_id=node_id,
        clock=ReactorClock(clock),
        db=db,
        cpu=inline,
        signer=signer(make_node(tmp_path, node_id, now=T0)),
        sealer=Sealer(new_kek()),
        metrics=NodeMetrics(),
    )
    return ClockedNode(clock, db, runtime)


def fired(d: Deferred[Any]) -> Any:
    """The result of a Deferred that has fired (fails the test if it has not, or failed)."""
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    (result,) = results
    if hasattr(result, "raiseException"):  # a Failure
        result.raiseException()
    return result


#: One scripted answer: an HTTP status, an exception to fail with, or None to hold the
#: POST unanswered (the test fires ``client.held[-1]`` itself).
Answer = int | Exception | None


@dataclass
class ScriptedClient:
    """An HTTPS client whose POSTs take the scripted answers in turn (the last one repeats)."""

    answers: Sequence[Answer]
    #: When given, the clock time of each POST is recorded in ``posted_at``, in seconds after T0.
    clock: Clock | None = None
    posts: list[tuple[str, bytes]] = field(default_factory=list)
    posted_at: list[float] = field(default_factory=list)
    held: list[Deferred[Any]] = field(default_factory=list)

    def post(self, url: str, body: bytes) -> Deferred[Any]:
        answer = self.answers[min(len(self.posts), len(self.answers) - 1)]
        self.posts.append((url, body))
        if self.clock is not None:
            self.posted_at.append(self.clock.seconds() - T0.timestamp())
        if answer is None:
            d: Deferred[Any] = Deferred()
            self.held.append(d)
            return d
        if isinstance(answer, Exception):
            return fail(answer)
        return succeed(HTTPAnswer(answer, b"", "text/plain"))


__all__ = ["ClockedNode", "ScriptedClient", "clocked_node", "fired"]
