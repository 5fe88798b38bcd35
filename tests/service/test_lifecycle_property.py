"""Random runs of moves across two real nodes keep both nodes in the same state.

Hypothesis draws sequences of (document type, side), biased towards moves
the table allows in the current state so that runs go deep. The sides
include the coordinators (tests/service/coordinated.py): disputes, their
settlement back to the state before the dispute or their end, reminders,
mediation notes and forwards are drawn like any other move. Each run plays
into a fresh exchange on one pair of nodes (started once for the module):
after every move both nodes hold the state the transition table gives, a
move outside the table is refused and changes nothing on either node, and
at the end both nodes agree.

Hypothesis drives a synchronous function, run in a greenlet of its own;
each move runs on the reactor through ``pytest_twisted.blockon``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import greenlet
import pytest
import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor
from twisted.python.failure import Failure

from gateway.core.lifecycle import RESUMPTIONS, TRANSITIONS, Role, State
from tests.service.coordinated import coordinated_nodes
from tests.service.moves import Move, Pair, expected_refusal

ALL_MOVES: list[Move] = sorted(
    {(d, r) for (_, d, r) in set(TRANSITIONS) | RESUMPTIONS} | {("Request", Role.RESPONDER)}
)


def _allowed(state: State) -> list[Move]:
    return sorted((d, r) for (s, d, r) in set(TRANSITIONS) | RESUMPTIONS if s is state)


def _run(coroutine: Any) -> Any:
    return pytest_twisted.blockon(defer.ensureDeferred(coroutine))


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    context = coordinated_nodes(tmp_path_factory.mktemp("nodes"))
    bed = _run(context.__aenter__())
    try:
        yield Pair(bed.nodes, bed.systems)
    finally:
        _run(context.__aexit__(None, None, None))


def _in_greenlet(func: Callable[[], None]) -> defer.Deferred[None]:
    """Run blocking ``func`` in a greenlet of its own, so it may ``blockon`` the reactor.

    pytest-twisted runs tests in the reactor's greenlet, where ``blockon``
    is not allowed; hypothesis needs a synchronous function.
    """
    done: defer.Deferred[None] = defer.Deferred()

    def body() -> None:
        try:
            func()
        except BaseException:
            reactor.callLater(0, done.errback, Failure())
        else:
            reactor.callLater(0, done.callback, None)

    greenlet.greenlet(body).switch()
    return done


def _play(pair: Pair, data: st.DataObject) -> None:
    exchange_id = pair.new_exchange()
    state = State.NEW
    before_dispute: State | None = None
    length = data.draw(st.integers(min_value=1, max_value=8), label="length")
    for step in range(length):
        allowed = _allowed(state)
        choices = st.sampled_from(ALL_MOVES)
        if allowed:
            choices = st.sampled_from(allowed) | choices
        document_type, role = data.draw(choices, label=f"move {step}")
        before = _run(pair.snapshot(exchange_id))
        outcome = _run(pair.send(exchange_id, document_type, role))
        target = TRANSITIONS.get((state, document_type, role))
        if (state, document_type, role) in RESUMPTIONS:
            target = before_dispute
        move = f"{document_type} from {role.value} in {state.value}"
        if target is None:
            assert outcome == expected_refusal(document_type, role, state), move
            assert _run(pair.snapshot(exchange_id)) == before, f"{move} changed a node"
        else:
            assert outcome is None, f"{move}: {outcome}"
            if target is State.DISPUTED and state is not State.DISPUTED:
                before_dispute = state
            state = target
        expected = None if state is State.NEW else state.value
        assert _run(pair.states(exchange_id)) == {"NO": expected, "PT": expected}, move
    # both nodes derived the same deadlines, milestones and dispute memory
    deadlines = _run(pair.deadlines(exchange_id))
    assert deadlines["NO"] == deadlines["PT"], deadlines


@pytest_twisted.ensureDeferred
async def test_random_runs_keep_both_nodes_in_the_same_state(pair: Pair) -> None:
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def random_runs(data: st.DataObject) -> None:
        _play(pair, data)

    await _in_greenlet(random_runs)
