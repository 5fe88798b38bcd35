"""KPIs with simple charts: the exchanges by state, and a slot for the performance figures.

The performance figures in the terms of the Single Market Scoreboard (share
accepted within 7 days, average days to answer, share answered by the agreed
date, escalations and disputes) are computed elsewhere, from what the node
stored, the same for whoever asks. The console does not compute them: the
computation is plugged in with :func:`plug_kpis`, a function that takes the
console's dependencies and a :class:`Period` and returns :class:`KpiRow`s::

    from gateway.console.views.kpis import KpiRow, plug_kpis

    async def figures(deps, period):
        rows = await deps.db.run_txn(kpi_txn, start=period.start, end=period.end)
        return [KpiRow("accepted_within_7_days", 100 * r.share, "%", r.scope) for r in rows]

    plug_kpis(figures)

Until one is plugged in the page shows the exchanges by state and says so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.console.deps import ConsoleDeps
from gateway.console.registry import ALL, ConsoleInputInvalid, Context, Page, page
from gateway.storage.console_views import exchange_counts_txn

#: The period shown when none is asked for: the last 90 days.
DEFAULT_DAYS = 90


@dataclass(frozen=True)
class Period:
    """From ``start`` (inclusive) to ``end`` (exclusive), UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class KpiRow:
    """One figure: its code (a message key ``kpi.<code>`` if the catalogues have one), value,
    unit (``%``, ``days`` or ``count``) and scope (node, authority or legislation area)."""

    code: str
    value: float
    unit: str
    scope: str = ""


KpiSource = Callable[[ConsoleDeps, Period], Awaitable[Sequence[KpiRow]]]
_source: list[KpiSource] = []


def plug_kpis(source: KpiSource | None) -> None:
    """Show ``source``'s figures on the KPI page (None: unplug)."""
    _source.clear()
    if source is not None:
        _source.append(source)


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
    figures = list(await _source[0](ctx.deps, Period(start, end))) if _source else None
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
