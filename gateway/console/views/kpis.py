"""KPIs with simple charts: the Single Market Scoreboard figures, and the exchanges by state.

The figures (share accepted within 7 days, average days to answer, share
answered by the agreed date, escalations and disputes; docs/kpi.md) come
from :class:`gateway.service.kpi.KpiQueries`, the service behind
``imi-gateway kpi`` and ``GET /api/v1/kpi``, so a period shows the same
figures here as there. Operators and auditors see every row; a coordinator
the rows of its scope (as over the API).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.console.registry import ALL, ConsoleInputInvalid, Context, Page, page
from gateway.core.kpi import Figures, KpiReport, Period
from gateway.storage.console_views import exchange_counts_txn

#: The period shown when none is asked for: the last 90 days.
DEFAULT_DAYS = 90


@dataclass(frozen=True)
class KpiRow:
    """One figure: its code (message key ``kpi.<code>``), value, unit (``%``, ``days`` or
    ``count``) and scope (node / authority / legislation area, or the total)."""

    code: str
    value: float
    unit: str
    scope: str = ""


def kpi_rows(report: KpiReport) -> list[KpiRow]:
    """The figures of ``report`` as rows: the total first, then each group."""
    rows: list[KpiRow] = []
    for group in (report.total, *report.rows):
        scope = _scope(group)
        rows.append(KpiRow("requests", group.requests, "count", scope))
        for code, share in (
            ("accepted_within_7_days", group.accepted_within_7_days_share),
            ("answered_by_agreed_date", group.answered_by_agreed_date_share),
        ):
            if share is not None:
                rows.append(KpiRow(code, 100 * share, "%", scope))
        if group.average_days_to_answer is not None:
            rows.append(
                KpiRow("average_days_to_answer", group.average_days_to_answer, "days", scope)
            )
        rows.append(KpiRow("escalations", group.escalations, "count", scope))
        rows.append(KpiRow("disputes", group.disputes, "count", scope))
    return rows


def _scope(group: Figures) -> str:
    parts = [p for p in (group.node, group.authority, group.area) if p]
    return " / ".join(parts) if parts else "total"


async def _figures(ctx: Context, period: Period) -> Sequence[KpiRow] | None:
    kpi = ctx.deps.kpi
    if kpi is None:
        return None
    if ctx.user.role == "coordinator":
        if not ctx.user.coordinator_id:
            return []
        report = await kpi.for_caller(ctx.user.coordinator_id, period)
    else:
        report = await kpi.report(period)
    return kpi_rows(report)


def _day(ctx: Context, name: str, default: datetime) -> datetime:
    value = ctx.arg(name)
    if not value:
        return default
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ConsoleInputInvalid(f"{name}: a date YYYY-MM-DD") from None


@page("kpis", roles=ALL, nav="nav.kpis", order=80)
async def kpis(ctx: Context) -> Page:
    today = ctx.now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = _day(ctx, "from", today - timedelta(days=DEFAULT_DAYS))
    end = _day(ctx, "to", today) + timedelta(days=1)
    if end <= start:
        raise ConsoleInputInvalid("to: after from")
    figures = await _figures(ctx, Period(start, end))
    counts = await ctx.deps.db.run_txn(exchange_counts_txn)
    total = sum(counts.values()) or 1
    bars = [(state, n, round(100 * n / total)) for state, n in sorted(counts.items())]
    return Page(
        "kpis.html",
        {
            "bars": bars,
            "total": sum(counts.values()),
            "figures": figures,
            "period": {"from": start.date(), "to": (end - timedelta(days=1)).date()},
        },
    )
