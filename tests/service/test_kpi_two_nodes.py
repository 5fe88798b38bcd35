"""Performance figures across two real nodes on a moved clock (no sleeps): exact numbers.

NO-HELSEDIR sends PT-OMD three requests at one moment T. PT-OMD accepts the
first after exactly 3 days and answers it after 5 (before the agreed date);
the other two pass the acceptance deadline and the grace period, so NO's
deadline service escalates both; PT-OMD disputes the third, then accepts
the second after 11 days and answers it after 14 (after the agreed date).
Every document's signed creation time is set to the day, so the figures are
exact: 1 of 3 accepted within 7 days, 9.5 days to answer on average, 1 of 2
answered by the agreed date, 2 escalations, 1 dispute. Both nodes compute
the same figures; the API (as PT-OMD and as coordinators), the CLI and the
gauges agree.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import pytest_twisted

from gateway import cli
from gateway.core.coordination import Dispute
from gateway.core.docxml import format_datetime
from gateway.core.kpi import KpiReport, Period
from gateway.core.ns import DOC_NS
from gateway.core.xmlparse import parse_xml
from gateway.testbed import doctor_acceptance, doctor_answer, doctor_request
from tests.service.coordinated import REQUESTER, RESPONDER, Bed, coordinated_nodes
from tests.transport.test_peer_security import refusal

DAY = timedelta(days=1)


async def _play(bed: Bed) -> tuple[datetime, list[Any]]:
    requests = []
    for n in (1, 2, 3):
        request = doctor_request(f"KPI-{n}", REQUESTER, RESPONDER, bed.clock.now())
        assert await bed.submit(REQUESTER, request) == (200, None)
        await bed.on_both(request.header.document_id)
        requests.append(request)
    t = requests[0].header.created

    async def respond(document: Any) -> None:
        assert await bed.submit(RESPONDER, document) == (200, None)
        await bed.on_both(document.header.document_id)

    def at(request: Any, days: int) -> datetime:
        return request.header.created + days * DAY  # exact: the signed Created

    first, second, third = requests
    bed.clock.advance(3 * DAY)
    agreed = (t + 10 * DAY).date()
    await respond(replace(doctor_acceptance(first, at(first, 3)), agreed_reply_date=agreed))
    bed.clock.advance(2 * DAY)
    await respond(doctor_answer(first, at(first, 5)))
    # 7 days + 3 days' grace: NO escalates the two unaccepted requests
    bed.clock.advance(5 * DAY + timedelta(hours=1))
    deadlines = bed.nodes["NO"].parts.deadlines
    assert deadlines is not None and await deadlines.run_once() == 2
    escalations = await bed.db("NO").run_txn(
        lambda conn: (
            conn.exec_driver_sql(
                "SELECT message_id FROM messages WHERE document_type = 'Escalation'"
            )
            .scalars()
            .all()
        )
    )
    for message_id in escalations:
        await bed.on_both(message_id)
    await respond(Dispute(bed.header(third.header.exchange_id, RESPONDER, REQUESTER), "OTHER"))
    bed.clock.advance(DAY - timedelta(hours=1))  # day 11
    agreed = (t + 12 * DAY).date()
    await respond(replace(doctor_acceptance(second, at(second, 11)), agreed_reply_date=agreed))
    bed.clock.advance(3 * DAY)  # day 14
    await respond(doctor_answer(second, at(second, 14)))
    return t, requests


def _expected(report: KpiReport) -> None:
    (row,) = report.rows
    assert (row.node, row.authority, row.area) == ("PT", RESPONDER, "PQD")
    assert row.requests == 3
    assert (row.accepted_within_7_days, row.acceptance_counted) == (1, 3)
    assert row.accepted_within_7_days_share == 0.3333
    assert (row.answered, row.average_days_to_answer) == (2, 9.5)
    assert (row.answered_by_agreed_date, row.agreed_counted) == (1, 2)
    assert row.answered_by_agreed_date_share == 0.5
    assert (row.escalations, row.disputes) == (2, 1)


def _api_rows(body: bytes) -> list[dict[str, str]]:
    root = parse_xml(body)
    return [dict(e.attrib) for e in root.iter(f"{{{DOC_NS}}}Figures")]


@pytest_twisted.ensureDeferred
async def test_both_nodes_the_api_the_cli_and_the_gauges_give_the_same_exact_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with coordinated_nodes(tmp_path) as bed:
        t, _ = await _play(bed)
        period = Period(t - DAY, t + DAY)
        as_of = bed.clock.now()
        reports = {}
        for country in ("NO", "PT"):
            queries = bed.nodes[country].parts.kpi
            assert queries is not None
            reports[country] = await queries.report(period, as_of=as_of)
            _expected(reports[country])
        assert reports["NO"] == reports["PT"]  # computed from what each node stored

        # the API, as the responder and as its coordinators; the national coordinator of PT
        query = urlencode(
            {
                "from": format_datetime(period.start),
                "to": format_datetime(period.end),
                "asOf": format_datetime(as_of),
            }
        )
        for who in (RESPONDER, "PT-KOORD", "PT-KOORD-OMD"):
            answer = await bed.get(who, f"/api/v1/kpi?{query}")
            assert answer.status == 200, answer.body
            (row,) = _api_rows(answer.body)
            assert row["authority"] == RESPONDER and row["requests"] == "3"
            assert row["acceptedWithin7DaysShare"] == "0.3333"
            assert row["averageDaysToAnswer"] == "9.5000"
            assert row["answeredByAgreedDateShare"] == "0.5000"
            assert (row["escalations"], row["disputes"]) == ("2", "1")
        # out of scope: another authority's figures, a coordinator of another authority
        answer = await bed.get("PT-KOORD-ACSS", f"/api/v1/kpi?{query}&authority={RESPONDER}")
        assert (answer.status, refusal(answer)[1]) == (403, "KPI_OUT_OF_SCOPE")
        answer = await bed.get("PT-KOORD-ACSS", f"/api/v1/kpi?{query}")
        assert answer.status == 200 and _api_rows(answer.body) == []
        # NO's requester sees no row: the figures are of the authorities that respond
        answer = await bed.get(REQUESTER, f"/api/v1/kpi?{query}")
        assert answer.status == 200 and _api_rows(answer.body) == []
        answer = await bed.get(RESPONDER, "/api/v1/kpi?from=2026-03-01&to=2026-02-01")
        assert (answer.status, refusal(answer)[1]) == (400, "KPI_PERIOD_INVALID")

        # the CLI on either node directory gives the same rows
        for country in ("NO", "PT"):
            node_dir = str(bed.nodes[country].setup.node_dir)
            args = [
                "kpi",
                node_dir,
                "--from",
                format_datetime(period.start),
                "--to",
                format_datetime(period.end),
                "--as-of",
                format_datetime(as_of),
                "--json",
            ]
            assert cli.main(args) == 0
            data = json.loads(capsys.readouterr().out)
            (row,) = data["rows"]
            assert row["accepted_within_7_days_share"] == 0.3333
            assert row["average_days_to_answer"] == 9.5
            assert row["answered_by_agreed_date_share"] == 0.5
            assert (row["escalations"], row["disputes"]) == (2, 1)

        # the gauges over the rolling windows, refreshed on the node's clock
        gauges = bed.nodes["PT"].parts.kpi_gauges
        assert gauges is not None
        await gauges.refresh()
        registry = bed.nodes["PT"].parts.metrics.registry
        labels = {"window": "30d", "node": "PT", "authority": RESPONDER, "area": "PQD"}
        value = registry.get_sample_value
        assert value("imi_kpi_requests", labels) == 3
        assert value("imi_kpi_accepted_within_7_days_ratio", labels) == 0.3333
        assert value("imi_kpi_answer_days_average", labels) == 9.5
        assert value("imi_kpi_answered_by_agreed_date_ratio", labels) == 0.5
        assert value("imi_kpi_escalations", labels) == 2
        assert value("imi_kpi_disputes", labels) == 1
        assert value("imi_kpi_requests", {**labels, "window": "365d"}) == 3
        # 31 days on, the 30-day window no longer holds them
        bed.clock.advance(31 * DAY)
        await gauges.refresh()
        assert value("imi_kpi_requests", labels) is None
        assert value("imi_kpi_requests", {**labels, "window": "365d"}) == 3
