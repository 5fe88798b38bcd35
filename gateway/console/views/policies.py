"""Policies and retention timers per legislation area (read-only view of ``[retention]``).

Retention is changed in gateway.toml (docs/configuration.md) and applies at
the next start; the console shows what the running node applies.
"""

from __future__ import annotations

from gateway.console.registry import OPERATOR, Context, Page, page


@page("policies", roles=OPERATOR, nav="nav.policies", order=60)
async def policies(ctx: Context) -> Page:
    retention = ctx.deps.config.retention
    catalogue = ctx.deps.catalogues.latest
    areas = sorted(set(catalogue.areas) | set(retention.areas))
    rows = []
    for area in [None, *areas]:
        policy = retention.policy(area)
        rows.append(
            {
                "area": area,
                "title": catalogue.areas[area].titles
                if area is not None and area in catalogue.areas
                else None,
                "after_closure": str(policy.after_closure),
                "if_never_closed": str(policy.if_never_closed),
                "specific": area in retention.areas,
            }
        )
    return Page(
        "policies.html",
        {"rows": rows, "interval": retention.interval_seconds, "batch": retention.batch_size},
    )
