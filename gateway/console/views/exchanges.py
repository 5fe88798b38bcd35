"""Exchanges: search by id, authority, state, legislation area and date; each one's timeline.

Metadata only (ids, authorities, codes, digests, times): the console never
reads a document body.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.console.registry import READERS, ConsoleInputInvalid, Context, Page, page
from gateway.storage.errors import ExchangeNotFound
from gateway.storage.exchanges import exchange_txn, list_exchanges_txn
from gateway.storage.messages import exchange_messages_txn
from gateway.storage.tracking import tracking_events_txn


def _date(ctx: Context, name: str) -> datetime | None:
    value = ctx.arg(name)
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ConsoleInputInvalid(f"{name}: a date YYYY-MM-DD") from None


@page("exchanges", roles=READERS, nav="nav.exchanges", order=20, prefix=True)
async def exchanges(ctx: Context) -> Page:
    db = ctx.deps.db
    if ctx.rest:
        return await _timeline(ctx, ctx.rest)
    exchange_id = ctx.arg("id")
    if exchange_id:
        try:
            found = [await db.run_txn(exchange_txn, exchange_id)]
        except ExchangeNotFound:
            found = []
    else:
        created_to = _date(ctx, "to")
        found = await db.run_txn(
            list_exchanges_txn,
            authority_id=ctx.arg("authority") or None,
            state=ctx.arg("state") or None,
            area=ctx.arg("area") or None,
            created_from=_date(ctx, "from"),
            created_to=created_to + timedelta(days=1) if created_to else None,
            limit=200,
        )
    areas = sorted(ctx.deps.catalogues.latest.areas)
    return Page(
        "exchanges.html",
        {
            "exchanges": found,
            "areas": areas,
            "filters": {k: ctx.arg(k) for k in ("id", "authority", "state", "area", "from", "to")},
        },
    )


async def _timeline(ctx: Context, exchange_id: str) -> Page:
    db = ctx.deps.db
    exchange = await db.run_txn(exchange_txn, exchange_id)
    events = await db.run_txn(tracking_events_txn, exchange_id)
    messages = await db.run_txn(exchange_messages_txn, exchange_id)
    return Page("exchange.html", {"exchange": exchange, "events": events, "messages": messages})
