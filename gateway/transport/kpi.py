"""``GET /api/v1/kpi``: the performance figures on the national-system listener.

``?from=&to=`` (ISO dates or times, the period in which the counted requests
were created), optional ``authority=``, ``area=`` and ``asOf=``. Mounted under
the listener's guard (``transport.api.api_root``'s ``extra``), so the caller is
authenticated before this runs; :meth:`~gateway.service.kpi.KpiQueries.for_caller`
decides which rows it may see. Answers a ``Kpi`` document (docs/api.md, docs/kpi.md).
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from gateway.core.docxml import format_datetime, new_root
from gateway.core.kpi import Figures, KpiReport, Period, parse_instant
from gateway.core.ns import DOC_NS
from gateway.service.kpi import KpiQueries
from gateway.transport.api import BadParameter, _Endpoint, caller

__all__ = ["KpiResource", "kpi_xml"]


def _figures(parent: etree._Element, tag: str, row: Figures) -> None:
    element = etree.SubElement(parent, f"{{{DOC_NS}}}{tag}")
    for name, value in (("node", row.node), ("authority", row.authority), ("area", row.area)):
        if value is not None:
            element.set(name, value)
    counts = {
        "requests": row.requests,
        "acceptanceCounted": row.acceptance_counted,
        "acceptedWithin7Days": row.accepted_within_7_days,
        "answered": row.answered,
        "agreedCounted": row.agreed_counted,
        "answeredByAgreedDate": row.answered_by_agreed_date,
        "escalations": row.escalations,
        "disputes": row.disputes,
    }
    for name, count in counts.items():
        element.set(name, str(count))
    shares = {
        "acceptedWithin7DaysShare": row.accepted_within_7_days_share,
        "averageDaysToAnswer": row.average_days_to_answer,
        "answeredByAgreedDateShare": row.answered_by_agreed_date_share,
    }
    for name, share in shares.items():
        if share is not None:  # absent: nothing to divide by yet
            element.set(name, f"{share:.4f}")


def kpi_xml(report: KpiReport) -> bytes:
    """The ``Kpi`` answer: one ``Figures`` element per row, then the ``Total``."""
    root = new_root("Kpi")
    root.set("from", format_datetime(report.period.start))
    root.set("to", format_datetime(report.period.end))
    root.set("asOf", format_datetime(report.as_of))
    for row in report.rows:
        _figures(root, "Figures", row)
    _figures(root, "Total", report.total)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _arg(request: Any, name: str) -> str | None:
    raw = request.args.get(name.encode(), [None])[0]
    if raw is None:
        return None
    text: str = raw.decode("utf-8", "replace")
    if not text or len(text) > 64:
        raise BadParameter(f"{name} must be 1 to 64 characters")
    return text


class KpiResource(_Endpoint):
    """GET /api/v1/kpi?from=&to=[&authority=][&area=][&asOf=]: the caller's figures."""

    def __init__(self, queries: KpiQueries) -> None:
        super().__init__()
        self._queries = queries

    def render_GET(self, request: Any) -> Any:
        async def handle() -> bytes:
            who = caller(request)
            start, end = _arg(request, "from"), _arg(request, "to")
            if start is None or end is None:
                raise BadParameter("from and to are required (ISO dates or times)")
            as_of = _arg(request, "asOf")
            report = await self._queries.for_caller(
                who,
                Period.parse(start, end),
                as_of=None if as_of is None else parse_instant(as_of, "asOf"),
                authority=_arg(request, "authority"),
                area=_arg(request, "area"),
            )
            return kpi_xml(report)

        return self._respond(request, handle)
