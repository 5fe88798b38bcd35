"""The audit log: entries newest first with filters, and the signed export to download.

The export is ``imi-gateway audit export``'s: a checkpoint recorded, the
selected entries with their inclusion proofs, signed by the node
(``storage.audit.audit_export_txn``, ``core.audit.signed_export``); the file
verifies offline with ``imi-gateway audit verify``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.console.registry import (
    READERS,
    ConsoleInputInvalid,
    Context,
    Download,
    Page,
    action,
    page,
)
from gateway.core.audit import Event, signed_export
from gateway.storage.audit import audit_export_txn
from gateway.storage.console_views import recent_audit_txn


@page("audit", roles=READERS, nav="nav.audit", order=90)
async def audit_log(ctx: Context) -> Page:
    before = ctx.arg("before")
    entries = await ctx.deps.db.run_txn(
        recent_audit_txn,
        event=ctx.arg("event") or None,
        exchange_id=ctx.arg("exchange") or None,
        actor=ctx.arg("actor") or None,
        before_seq=int(before) if before.isdigit() else None,
        limit=100,
    )
    return Page(
        "audit.html",
        {
            "entries": entries,
            "events": [e.value for e in Event],
            "filters": {k: ctx.arg(k) for k in ("event", "exchange", "actor")},
            "next_before": entries[-1].seq if len(entries) == 100 else None,
        },
    )


def _time(ctx: Context, name: str) -> datetime | None:
    value = ctx.arg(name)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConsoleInputInvalid(f"{name}: a date or time (ISO 8601)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@action("audit/export", roles=READERS)
async def export(ctx: Context) -> Download:
    """A POST (with its CSRF token): an export records a checkpoint."""
    deps = ctx.deps
    exchange = ctx.arg("exchange") or None
    start, end = _time(ctx, "from"), _time(ctx, "to")
    if exchange and (start or end):
        raise ConsoleInputInvalid("exchange: give either from/to or an exchange, not both")
    entries, hashes, selected = await deps.db.run_txn(
        audit_export_txn, at=ctx.now, start=start, end=end, exchange_id=exchange
    )
    data = await deps.run(
        signed_export,
        deps.node_id,
        entries,
        hashes,
        selected,
        at=ctx.now,
        by_exchange=exchange is not None,
        sign=deps.sign,
    )
    name = f"audit-{deps.node_id}-{ctx.now.strftime('%Y%m%dT%H%M%SZ')}.xml"
    return Download(data, name, "application/xml")
