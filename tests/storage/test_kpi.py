"""The facts of the performance figures: one query, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.core.kpi import Period
from gateway.storage.kpi import kpi_facts_txn
from tests.test_kpi_guide import DAY, T, seed_example_txn

MARCH = Period(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
LATER = datetime(2026, 5, 1, tzinfo=UTC)


def test_facts_are_the_period_s_requests_with_their_signed_times_and_counts(db) -> None:
    db.run_txn_sync(seed_example_txn)
    facts = {f.exchange_id: f for f in db.run_txn_sync(kpi_facts_txn, period=MARCH, as_of=LATER)}
    assert sorted(facts) == [f"NO-HELSEDIR:KPI-{n}" for n in (1, 2, 3, 4)]
    first = facts["NO-HELSEDIR:KPI-1"]
    assert first.requested_at == T and first.accepted_at == T + 3 * DAY
    assert first.answered_at == T + 5 * DAY and first.reply_date_agreed is True
    assert (first.responder_node, first.responder_authority, first.area) == ("PT", "PT-OMD", "PQD")
    third = facts["NO-HELSEDIR:KPI-3"]
    assert (third.escalations, third.disputes, third.state) == (1, 1, "disputed")
    assert third.accepted_at is None and third.reply_date_agreed is False


def test_facts_keep_the_period_the_authority_the_area_and_what_existed_as_of(db) -> None:
    db.run_txn_sync(seed_example_txn)

    def ids(**kw: object) -> list[str]:
        kw.setdefault("period", MARCH)
        kw.setdefault("as_of", LATER)
        return [f.exchange_id[-5:] for f in db.run_txn_sync(kpi_facts_txn, **kw)]

    assert ids(authority="PT-DGAE") == ["KPI-4"]
    assert ids(area="PQD") == ["KPI-1", "KPI-2", "KPI-3"]
    # [from, to): a request created exactly at "to" is the next period's
    assert ids(period=Period(T - DAY, T)) == []
    assert ids(period=Period(T, T + DAY)) == ["KPI-1", "KPI-2", "KPI-3"]
    # as of between KPI-3's escalation (day 10.1) and its dispute (10.2); KPI-4 not yet requested
    early = db.run_txn_sync(kpi_facts_txn, period=MARCH, as_of=T + timedelta(days=10.15))
    by_id = {f.exchange_id[-5:]: f for f in early}
    assert sorted(by_id) == ["KPI-1", "KPI-2", "KPI-3"]
    assert (by_id["KPI-3"].escalations, by_id["KPI-3"].disputes) == (1, 0)
