"""Coordinator views and KPIs: page slots for the coordinator work (overdue, disputed and
escalated exchanges, reminders, reassignment, mediation notes; KPIs with charts).

The slots are registered with their roles so the menu and the role rules are
in place; the pages fill in from the coordinator services when they exist
(register the coordinator actions here with ``@action(..., roles=COORDINATOR)``).
"""

from __future__ import annotations

from gateway.console.registry import ALL, COORDINATOR, Context, Page, page
from gateway.storage.console_views import exchange_counts_txn


@page("coordinator", roles=COORDINATOR, nav="nav.coordinator", order=5)
async def coordinator_desk(ctx: Context) -> Page:
    return Page("coordinator.html", {"scope": ctx.user.coordinator_id})


@page("kpis", roles=ALL, nav="nav.kpis", order=80)
async def kpis(ctx: Context) -> Page:
    counts = await ctx.deps.db.run_txn(exchange_counts_txn)
    total = sum(counts.values()) or 1
    bars = [(state, n, round(100 * n / total)) for state, n in sorted(counts.items())]
    return Page("kpis.html", {"bars": bars, "total": sum(counts.values())})
