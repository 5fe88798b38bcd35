"""Every row of the transition table, played across two real nodes.

For each row (state, document, side) a fresh exchange is brought into the
row's state, the row's side submits the document, and both nodes must reach
the row's next state. Then, for every state, every move NOT in the table is
submitted into an exchange in that state: each is refused with its code and
changes nothing on either node. Issue 8, finding 1: before, the pipeline
decided the sender's role by document type, so a requester's follow-up
InformationRequest and a requester's Acceptance of a proposed reply date
were refused (EXCHANGE_MISMATCH). Coordinator moves are played by the
coordinators of tests/service/coordinated.py, and settling a dispute
(``RESUMPTIONS``) returns the exchange to the state before it.
"""

from __future__ import annotations

from pathlib import Path

import pytest_twisted
from twisted.internet import defer

from gateway.core.lifecycle import RESUMPTIONS, TRANSITIONS, Role, State
from gateway.core.schemas import COORDINATOR_DOCUMENT_TYPES, DocumentType
from tests.service.coordinated import coordinated_nodes
from tests.service.moves import PATHS, Pair, expected_refusal

#: Rows played at once (each on its own exchange).
CONCURRENCY = 8


async def _play_row(pair: Pair, row: tuple[State, str, Role], target: State) -> list[str]:
    state, document_type, role = row
    exchange_id = pair.new_exchange()
    try:
        await pair.drive(exchange_id, state)
    except AssertionError as failed:
        return [f"{state.value} + {document_type} from {role.value}: {failed}"]
    code = await pair.send(exchange_id, document_type, role)
    if code is not None:
        return [f"{state.value} + {document_type} from {role.value}: refused {code}"]
    states = await pair.states(exchange_id)
    if states != {"NO": target.value, "PT": target.value}:
        return [f"{state.value} + {document_type} from {role.value}: {states}, not {target.value}"]
    return []


async def _play_refusals(pair: Pair, state: State) -> list[str]:
    exchange_id = pair.new_exchange()
    try:
        await pair.drive(exchange_id, state)
    except AssertionError as failed:
        return [f"moves outside the table in {state.value}: {failed}"]
    before = await pair.snapshot(exchange_id)
    failures = []
    for document_type in DocumentType:
        if document_type not in {d for (_, d, _) in TRANSITIONS}:
            continue  # node documents are not exchange documents
        for role in Role:
            if (state, document_type, role) in set(TRANSITIONS) | RESUMPTIONS:
                continue
            if role is Role.COORDINATOR and document_type not in COORDINATOR_DOCUMENT_TYPES:
                continue  # coordinators send only their own documents
            move = f"{state.value} + {document_type} from {role.value}"
            code = await pair.send(exchange_id, document_type, role)
            if code != expected_refusal(document_type, role, state):
                failures.append(f"{move}: {code or 'accepted'}, not refused as expected")
            if await pair.snapshot(exchange_id) != before:
                failures.append(f"{move}: changed what a node holds")
    return failures


@pytest_twisted.ensureDeferred
async def test_every_transition_and_no_other_move_plays_across_two_nodes(tmp_path: Path) -> None:
    assert set(PATHS) == set(State), "every state is reachable from NEW"
    # settling the dispute of PATHS[DISPUTED] (Request, Dispute) returns to REQUESTED
    rows = [*TRANSITIONS.items(), *((row, State.REQUESTED) for row in RESUMPTIONS)]
    async with coordinated_nodes(tmp_path) as bed:
        pair = Pair(bed.nodes, bed.systems)
        limit = defer.DeferredSemaphore(CONCURRENCY)
        jobs = [
            limit.run(lambda r=row, t=target: defer.ensureDeferred(_play_row(pair, r, t)))
            for row, target in rows
        ] + [
            limit.run(lambda s=state: defer.ensureDeferred(_play_refusals(pair, s)))
            for state in State
        ]
        results = await defer.gatherResults(jobs, consumeErrors=True)
    failures = [failure for result in results for failure in result]
    assert not failures, "\n".join(failures)
