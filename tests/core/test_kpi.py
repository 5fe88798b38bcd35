"""The Scoreboard figures from exchange facts (sans-IO): exact numbers, periods, scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.core.coordinators import Coordinator, Scope
from gateway.core.kpi import (
    ExchangeFacts,
    KpiOutOfScope,
    KpiPeriodInvalid,
    Period,
    compute,
    parse_instant,
    report_json,
    visible,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
PERIOD = Period(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
AS_OF = datetime(2026, 5, 1, tzinfo=UTC)


def fact(n: int, **kw: object) -> ExchangeFacts:
    values: dict[str, object] = {
        "exchange_id": f"NO-A:{n}",
        "responder_node": "PT",
        "responder_authority": "PT-OMD",
        "area": "PQD",
        "state": "answered",
        "requested_at": T0,
    }
    values.update(kw)
    return ExchangeFacts(**values)  # type: ignore[arg-type]


def test_figures_of_a_period_count_acceptance_answer_days_agreed_date_and_escalations() -> None:
    facts = [
        # accepted after 3 days, answered after 5, before the agreed date
        fact(
            1,
            accepted_at=T0 + 3 * DAY,
            answered_at=T0 + 5 * DAY,
            reply_due_at=T0 + 10 * DAY,
            reply_date_agreed=True,
        ),
        # accepted after 8 days (late), answered after 12, after the agreed date; escalated
        fact(
            2,
            accepted_at=T0 + 8 * DAY,
            answered_at=T0 + 12 * DAY,
            reply_due_at=T0 + 11 * DAY,
            reply_date_agreed=True,
            escalations=1,
        ),
        # never accepted: counts against the acceptance share once a week has passed
        fact(3, state="requested", escalations=2, disputes=1),
        # withdrawn before acceptance: not counted for acceptance
        fact(4, state="withdrawn"),
        # outside the period
        fact(5, requested_at=PERIOD.end, accepted_at=PERIOD.end + DAY),
    ]
    report = compute(facts, PERIOD, AS_OF)
    (row,) = report.rows
    assert (row.node, row.authority, row.area) == ("PT", "PT-OMD", "PQD")
    assert row.requests == 4
    assert (row.accepted_within_7_days, row.acceptance_counted) == (1, 3)
    assert row.accepted_within_7_days_share == 0.3333
    assert row.answered == 2 and row.average_days_to_answer == 8.5
    assert (row.answered_by_agreed_date, row.agreed_counted) == (1, 2)
    assert row.answered_by_agreed_date_share == 0.5
    assert (row.escalations, row.disputes) == (3, 1)
    assert report.total.requests == 4 and report.total.node is None


def test_figures_as_of_an_earlier_time_leave_out_what_came_later_and_pending_requests() -> None:
    facts = [
        fact(
            1,
            accepted_at=T0 + 3 * DAY,
            answered_at=T0 + 5 * DAY,
            reply_due_at=T0 + 10 * DAY,
            reply_date_agreed=True,
        ),
        fact(2, state="requested"),
    ]
    early = compute(facts, PERIOD, T0 + 4 * DAY)
    (row,) = early.rows
    # accepted: counted; the other, 4 days old and not accepted: not decided yet
    assert (row.accepted_within_7_days, row.acceptance_counted) == (1, 1)
    assert row.answered == 0 and row.average_days_to_answer is None
    assert row.agreed_counted == 0 and row.answered_by_agreed_date_share is None
    later = compute(facts, PERIOD, T0 + 7 * DAY)
    assert later.rows[0].acceptance_counted == 2
    assert compute(facts, PERIOD, AS_OF) == compute(list(reversed(facts)), PERIOD, AS_OF)


def test_an_agreed_date_passed_without_an_answer_counts_as_missed() -> None:
    facts = [
        fact(
            1,
            state="accepted",
            accepted_at=T0 + DAY,
            reply_due_at=T0 + 9 * DAY,
            reply_date_agreed=True,
        )
    ]
    assert compute(facts, PERIOD, T0 + 8 * DAY).rows[0].agreed_counted == 0
    row = compute(facts, PERIOD, T0 + 9 * DAY).rows[0]
    assert (row.answered_by_agreed_date, row.agreed_counted) == (0, 1)


def test_rows_are_per_node_authority_and_area_and_the_total_adds_them() -> None:
    facts = [
        fact(1, accepted_at=T0 + DAY),
        fact(2, area="SD", accepted_at=T0 + DAY),
        fact(3, responder_node="NO", responder_authority="NO-B"),
    ]
    report = compute(facts, PERIOD, AS_OF)
    keys = [(r.node, r.authority, r.area) for r in report.rows]
    assert keys == [("NO", "NO-B", "PQD"), ("PT", "PT-OMD", "PQD"), ("PT", "PT-OMD", "SD")]
    assert report.total.requests == 3
    assert (report.total.accepted_within_7_days, report.total.acceptance_counted) == (2, 3)
    data = report_json(report)
    assert data["from"] == "2026-03-01T00:00:00Z" and data["as_of"] == "2026-05-01T00:00:00Z"
    assert data["total"]["accepted_within_7_days_share"] == 0.6667


def test_periods_are_iso_dates_or_times_with_from_before_to() -> None:
    assert parse_instant("2026-03-01", "from") == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_instant("2026-03-01T10:00:00+02:00", "from") == datetime(2026, 3, 1, 8, tzinfo=UTC)
    with pytest.raises(KpiPeriodInvalid):
        Period.parse("2026-03-01", "2026-03-01")
    with pytest.raises(KpiPeriodInvalid):
        Period.parse("yesterday", "2026-03-01")


def test_a_caller_sees_its_own_rows_and_a_coordinator_those_in_its_scope() -> None:
    facts = [
        fact(1, accepted_at=T0 + DAY),
        fact(2, responder_authority="PT-ACSS"),
        fact(3, responder_node="NO", responder_authority="NO-HELSEDIR"),
    ]
    report = compute(facts, PERIOD, AS_OF)

    def seen(caller: str, coordinator: Coordinator | None, authority: str | None = None) -> list:
        got = visible(
            report,
            caller=caller,
            node_id="PT",
            coordinator=coordinator,
            region_of=lambda a: None,
            authority=authority,
        )
        return [r.authority for r in got.rows]

    assert seen("PT-OMD", None) == ["PT-OMD"]
    national = Coordinator("PT-KOORD", "Coordenador", Scope.NATIONAL)
    assert seen("PT-KOORD", national) == ["PT-ACSS", "PT-OMD"]  # not NO's, though stored here
    only_omd = Coordinator("PT-KOORD-OMD", "OMD", Scope.AUTHORITIES, ("PT-OMD",))
    assert seen("PT-KOORD-OMD", only_omd) == ["PT-OMD"]
    with pytest.raises(KpiOutOfScope):
        seen("PT-OMD", None, authority="PT-ACSS")
    with pytest.raises(KpiOutOfScope):
        seen("PT-KOORD-OMD", only_omd, authority="PT-ACSS")
    # a row is the same whoever sees it
    mine = visible(
        report, caller="PT-OMD", node_id="PT", coordinator=None, region_of=lambda a: None
    )
    assert mine.rows == tuple(r for r in report.rows if r.authority == "PT-OMD")
    assert mine.total.requests == 1
