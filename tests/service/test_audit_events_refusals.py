"""REFUSED audit entries: every refused submission and envelope is recorded, with its code.

On the clocked pipeline bed (``tests/service/test_clocked_pipeline.py``: NO's
pipeline on ``task.Clock``, PT's envelopes signed as PT's sender signs them).
A refusal decided by the storing transaction is recorded in that transaction
(the code and the message id in the entry's message field, the exchange id);
a refusal before it (signature, admission, replay window) in a small
transaction of its own, with only what is known without trusting the refused
bytes: the authenticated caller, the code, and the keyed digest of the bytes.
A duplicate is not a refusal and records nothing.
"""

# The ``bed`` fixture is imported from the clocked pipeline tests (hence F811 on its uses).
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import pytest

from gateway.core.admission import OutsideReplayWindow
from gateway.core.audit import Entry, parse_refusal
from gateway.core.errors import GatewayError
from gateway.service.pipeline import PayloadRefused
from gateway.storage.audit import audit_log_txn
from tests.service.test_clocked_pipeline import HELSEDIR, OMD, WINDOW, Bed, bed  # noqa: F401
from tests.storage.conftest import PEER


def log(bed: Bed) -> list[Entry]:
    entries: list[Entry] = bed.node.db.run_txn_sync(audit_log_txn)
    return entries


def digest(bed: Bed, data: bytes) -> str:
    return bed.node.runtime.audit_key.digest(data)


def test_a_submission_with_a_broken_signature_is_recorded_with_its_code_and_digest_only(
    bed: Bed,
) -> None:
    request = bed.request(HELSEDIR, OMD)
    tampered = request.data.replace(b"</", b" </", 1)
    with pytest.raises(GatewayError) as refused:
        bed.run(bed.pipeline.submit(HELSEDIR, tampered))
    (entry,) = log(bed)
    assert (entry.event, entry.actor, entry.exchange_id) == ("REFUSED", HELSEDIR, "")
    # Before verification nothing of the document is read: no message id, just the code.
    assert parse_refusal(entry.message_id) == (refused.value.code, "")
    assert entry.digest == digest(bed, tampered)


def test_a_stale_submission_is_recorded_as_refused_but_a_duplicate_records_nothing(
    bed: Bed,
) -> None:
    request = bed.request(HELSEDIR, OMD)
    bed.run(bed.pipeline.submit(HELSEDIR, request.data))
    accepted = log(bed)
    assert [e.event for e in accepted] == ["SUBMITTED", "STATE_CHANGED"]
    bed.run(bed.pipeline.submit(HELSEDIR, request.data))  # a duplicate: its receipt again
    assert log(bed) == accepted

    stale = bed.request(HELSEDIR, OMD)
    bed.node.clock.advance(WINDOW + 1)
    with pytest.raises(OutsideReplayWindow):
        bed.run(bed.pipeline.submit(HELSEDIR, stale.data))
    entry = log(bed)[-1]
    assert (entry.event, entry.actor) == ("REFUSED", HELSEDIR)
    assert parse_refusal(entry.message_id) == ("CREATION_TIME_OUT_OF_WINDOW", "")


def test_a_submission_refused_by_the_storing_transaction_is_recorded_in_it_with_its_ids(
    bed: Bed,
) -> None:
    first = bed.request(HELSEDIR, OMD)
    bed.run(bed.pipeline.submit(HELSEDIR, first.data))
    second = bed.request(HELSEDIR, OMD, first)  # a second Request in the same exchange
    with pytest.raises(GatewayError) as refused:
        bed.run(bed.pipeline.submit(HELSEDIR, second.data))
    assert refused.value.code == "EXCHANGE_STATE_CONFLICT"
    opened, entry = log(bed)[0], log(bed)[-1]
    assert (entry.event, entry.actor, entry.exchange_id) == (
        "REFUSED",
        HELSEDIR,
        opened.exchange_id,
    )
    assert parse_refusal(entry.message_id) == ("EXCHANGE_STATE_CONFLICT", second.message_id)
    assert entry.digest == digest(bed, second.data)
    assert len(log(bed)) == 3  # SUBMITTED, STATE_CHANGED of the first; REFUSED


@pytest.mark.parametrize(
    ("refusable", "cause", "in_transaction"),
    [
        (lambda bed, good: bed.request(OMD, "EE-TA"), "RECEIVER_NOT_AT_NODE", False),
        (lambda bed, good: bed.request(OMD, HELSEDIR, good), "EXCHANGE_STATE_CONFLICT", True),
    ],
    ids=["at-admission", "at-storing"],
)
def test_a_refused_envelope_is_recorded_as_refused_by_the_peer_and_nothing_of_it_as_received(
    bed: Bed, refusable: Any, cause: str, in_transaction: bool
) -> None:
    good = bed.request(OMD, HELSEDIR)
    bad = refusable(bed, good)
    _envelope_id, data = bed.envelope(good, bad)
    with pytest.raises(PayloadRefused):
        bed.run(bed.pipeline.receive_envelope(PEER, data))
    (entry,) = log(bed)  # the good document of the refused envelope is not recorded either
    assert (entry.event, entry.actor) == ("REFUSED", f"node:{PEER}")
    assert parse_refusal(entry.message_id) == (cause, bad.message_id)
    if in_transaction:  # the storing transaction knows the exchange and the document
        assert entry.exchange_id.endswith(good.message_id.removesuffix("-1"))
        assert entry.digest == digest(bed, bad.data)
    else:  # before it, only the envelope's bytes
        assert entry.exchange_id == ""
        assert entry.digest == digest(bed, data)


def test_an_accepted_envelope_records_each_document_received_from_the_peer(bed: Bed) -> None:
    request = bed.request(OMD, HELSEDIR)
    bed.run(bed.pipeline.receive_envelope(PEER, bed.envelope(request)[1]))
    received, changed = log(bed)
    assert (received.event, received.actor, received.message_id) == (
        "RECEIVED",
        f"node:{PEER}",
        request.message_id,
    )
    assert received.digest == digest(bed, request.data)
    assert (changed.event, changed.actor, changed.message_id) == (
        "STATE_CHANGED",
        OMD,
        request.message_id,
    )
    assert changed.exchange_id == received.exchange_id != ""
