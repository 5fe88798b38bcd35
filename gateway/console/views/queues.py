"""Outbound queues per peer and dead letters: retry, or abandon with a reason code.

The same store functions as ``imi-gateway queue`` (``storage.outbox``), run
with their CONSOLE_CHANGE audit entry in one transaction.
"""

from __future__ import annotations

from gateway.console.registry import (
    OPERATOR,
    ConsoleInputInvalid,
    Context,
    Page,
    Redirect,
    action,
    page,
)
from gateway.core.retry import ABANDON_REASONS
from gateway.storage.console_accounts import audited_txn
from gateway.storage.outbox import (
    abandon_dead_letters_txn,
    dead_letters_txn,
    outbox_depth_txn,
    retry_dead_letters_txn,
)


@page("queues", roles=OPERATOR, nav="nav.queues", order=30)
async def queues(ctx: Context) -> Page:
    db = ctx.deps.db
    depth = await db.run_txn(outbox_depth_txn)
    dead = await db.run_txn(dead_letters_txn, peer_node=ctx.arg("peer") or None, limit=500)
    return Page("queues.html", {"depth": depth, "dead": dead, "reasons": ABANDON_REASONS})


def _ids(ctx: Context) -> list[int]:
    try:
        ids = [int(v) for v in ctx.args("id")]
    except ValueError:
        raise ConsoleInputInvalid("id: dead-letter numbers") from None
    if not ids:
        raise ConsoleInputInvalid("id: choose at least one dead letter")
    return ids


@action("queues/retry", roles=OPERATOR)
async def retry(ctx: Context) -> Redirect:
    ids = _ids(ctx)
    deps = ctx.deps
    dead = {d.id: d.peer_node for d in await deps.db.run_txn(dead_letters_txn, limit=100_000)}
    count = await deps.db.run_txn(
        audited_txn,
        lambda conn: retry_dead_letters_txn(conn, ids, now=ctx.now, node=deps.node_id),
        at=ctx.now,
        actor=ctx.actor,
        subject="dead-letters-retried:" + ",".join(map(str, ids)),
    )
    for peer in sorted({dead[i] for i in ids if i in dead}):
        deps.wake_peer(peer)
    return Redirect("/queues", "flash.retried", {"n": count})


@action("queues/abandon", roles=OPERATOR)
async def abandon(ctx: Context) -> Redirect:
    ids = _ids(ctx)
    reason = ctx.required("reason")
    if reason not in ABANDON_REASONS:
        raise ConsoleInputInvalid(f"reason: one of {', '.join(ABANDON_REASONS)}")
    deps = ctx.deps
    count = await deps.db.run_txn(
        audited_txn,
        lambda conn: abandon_dead_letters_txn(
            conn, ids, reason=reason, now=ctx.now, node=deps.node_id
        ),
        at=ctx.now,
        actor=ctx.actor,
        subject=f"dead-letters-abandoned:{reason}:" + ",".join(map(str, ids)),
    )
    return Redirect("/queues", "flash.abandoned", {"n": count})
