"""The coordinator desk: exchanges needing the coordinator (metadata only) and its actions.

Everything goes through :class:`gateway.service.coordinators.CoordinatorDesk`,
the service the API (``/api/v1/coordination``) and ``imi-gateway coordinators``
use: the listing (``exchanges``), the scope (``in_scope``; an exchange outside
it, or unknown here, is COORDINATOR_OUT_OF_SCOPE) and the submission
(``submit``: admission, scope, lifecycle, storing, sending to the peer).

The console user acts as the coordinator of its account (``coordinator_id``).
Its documents are built by ``coordinator_document`` (as ``coordinators
document`` builds them) and signed by the coordinator: with the user's console
key when the operator issued one, else by the coordinator itself, who
downloads the unsigned document, signs it and uploads it
(:mod:`gateway.console.signing`). Every action, refused or done, is a
CONSOLE_CHANGE entry in the audit log naming the user, besides the entries
the pipeline records for the document.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote, unquote

from gateway.console.registry import (
    COORDINATOR,
    ConsoleInputInvalid,
    Context,
    Download,
    Page,
    Redirect,
    action,
    page,
)
from gateway.core.admission import country_of, scoped_id
from gateway.core.audit import Event
from gateway.core.coordinators import Coordinator, CoordinatorOutOfScope, CoordinatorUnknown
from gateway.core.documents import ExchangeDocument, to_bytes, to_xml
from gateway.core.docxml import LocalizedText
from gateway.core.errors import GatewayError
from gateway.core.ns import LANGUAGES
from gateway.service.coordinators import (
    DECISIONS,
    KINDS,
    VIEWS,
    CoordinatorDesk,
    coordinator_document,
)
from gateway.storage.audit import append_audit_txn
from gateway.storage.errors import ExchangeNotFound
from gateway.storage.exchanges import exchange_txn
from gateway.storage.model import Exchange
from gateway.storage.tracking import tracking_events_txn

#: Largest signed document accepted from the upload form.
MAX_UPLOAD = 256 * 1024


def _desk(ctx: Context) -> tuple[CoordinatorDesk, Coordinator]:
    desk = ctx.deps.coordinators
    if desk is None or not ctx.user.coordinator_id:
        raise CoordinatorUnknown("the console user is not bound to a registered coordinator")
    return desk, desk.coordinator(ctx.user.coordinator_id)


def _exchange_path(exchange_id: str) -> str:
    return "/coordinator/" + quote(exchange_id, safe=":")


async def _exchange_in_scope(
    ctx: Context, desk: CoordinatorDesk, coordinator: Coordinator, exchange_id: str
) -> Exchange:
    try:
        exchange: Exchange = await ctx.deps.db.run_txn(exchange_txn, exchange_id)
    except ExchangeNotFound:
        raise CoordinatorOutOfScope("the exchange is not in the coordinator's scope") from None
    if not desk.in_scope(coordinator, exchange):
        raise CoordinatorOutOfScope("the exchange is not in the coordinator's scope")
    return exchange


@page("coordinator", roles=COORDINATOR, nav="nav.coordinator", order=5, prefix=True)
async def coordinator_desk(ctx: Context) -> Page | Redirect:
    desk, coordinator = _desk(ctx)
    if ctx.rest:
        return await _exchange_page(ctx, desk, coordinator, unquote(ctx.rest))
    if ctx.arg("id"):
        return Redirect(_exchange_path(ctx.arg("id")))
    view = ctx.arg("view") or "all"
    if view not in VIEWS:
        raise ConsoleInputInvalid(f"view: one of {', '.join(VIEWS)}")
    items = await desk.exchanges(coordinator.id, view)
    return Page(
        "coordinator.html",
        {"coordinator": coordinator, "items": items, "view": view, "views": VIEWS},
    )


async def _exchange_page(
    ctx: Context, desk: CoordinatorDesk, coordinator: Coordinator, exchange_id: str
) -> Page:
    exchange = await _exchange_in_scope(ctx, desk, coordinator, exchange_id)
    events = await ctx.deps.db.run_txn(tracking_events_txn, exchange_id)
    local = desk.local_authority(exchange)
    published = await ctx.deps.run(ctx.deps.directory.published)
    targets = sorted(
        a for a in published.entries if country_of(a) == ctx.deps.node_id and a != local
    )
    signers = ctx.deps.signers
    assert signers is not None
    return Page(
        "coordinator_exchange.html",
        {
            "coordinator": coordinator,
            "exchange": exchange,
            "events": events,
            "local": local,
            "responder_side": local == exchange.responder_authority,
            "targets": targets,
            "decisions": DECISIONS,
            "kinds": KINDS,
            "languages": LANGUAGES,
            "console_key": signers.has_key(ctx.user.username, coordinator.id),
        },
    )


def _document(
    ctx: Context, coordinator: Coordinator, exchange: Exchange, kind: str
) -> ExchangeDocument:
    if kind not in KINDS:
        raise ConsoleInputInvalid(f"kind: one of {', '.join(KINDS)}")
    text = ctx.arg("note")
    lang = ctx.arg("lang") or ctx.t.lang
    if lang not in LANGUAGES:
        raise ConsoleInputInvalid("lang: a language code of the catalogue")
    if kind == "note" and not text:
        raise ConsoleInputInvalid("note: a mediation note needs a text")
    forward_to = ctx.arg("forward_to") or None
    if kind == "forward" and (not forward_to or country_of(forward_to) != ctx.deps.node_id):
        raise ConsoleInputInvalid("forward_to: another authority of this country")
    decision = ctx.arg("decision") or None
    if decision is not None and decision not in DECISIONS:
        raise ConsoleInputInvalid(f"decision: one of {', '.join(DECISIONS)}")
    return coordinator_document(
        coordinator,
        exchange,
        ctx.deps.node_id,
        kind,
        document_id=scoped_id(coordinator.id, uuid.uuid4().hex),
        created=ctx.now,
        note=LocalizedText(text, lang) if text else None,
        forward_to=forward_to,
        decision=decision,
    )


async def _submit(
    ctx: Context,
    desk: CoordinatorDesk,
    coordinator: Coordinator,
    exchange_id: str,
    what: str,
    body: bytes,
) -> None:
    """Hand a signed document to the desk; record the action (refused or done)."""
    try:
        await desk.submit(coordinator.id, body)
    except GatewayError as exc:
        await _record(ctx, exchange_id, f"{what}:refused:{exc.code}")
        raise
    await _record(ctx, exchange_id, what)


async def _record(ctx: Context, exchange_id: str, subject: str) -> None:
    """A CONSOLE_CHANGE entry: the console user, the exchange, what was done."""
    await ctx.deps.db.run_txn(
        append_audit_txn,
        at=ctx.now,
        event=Event.CONSOLE_CHANGE,
        actor=ctx.actor,
        exchange_id=exchange_id,
        message_id=subject,
    )


@action("coordinator/act", roles=COORDINATOR)
async def act(ctx: Context) -> Redirect:
    """Build, sign with the user's console key, and submit a coordinator document."""
    desk, coordinator = _desk(ctx)
    exchange_id = ctx.required("exchange")
    kind = ctx.required("kind")
    exchange = await _exchange_in_scope(ctx, desk, coordinator, exchange_id)
    document = _document(ctx, coordinator, exchange, kind)
    signers = ctx.deps.signers
    assert signers is not None
    signer = await ctx.deps.run(signers.signer, ctx.user.username, coordinator.id, ctx.now)
    if signer is None:
        raise ConsoleInputInvalid(
            "kind: no console key for this user; download the document, sign it, upload it"
        )
    body: bytes = await ctx.deps.run(signer.sign, to_xml(document))
    what = f"coordinator-{kind}:{exchange_id}:{document.header.document_id}"
    await _submit(ctx, desk, coordinator, exchange_id, what, body)
    return Redirect(_exchange_path(exchange_id), f"flash.coordinator_{kind}")


@action("coordinator/prepare", roles=COORDINATOR)
async def prepare(ctx: Context) -> Download:
    """The unsigned document, for the coordinator to sign with its own key."""
    desk, coordinator = _desk(ctx)
    exchange_id = ctx.required("exchange")
    kind = ctx.required("kind")
    exchange = await _exchange_in_scope(ctx, desk, coordinator, exchange_id)
    document = _document(ctx, coordinator, exchange, kind)
    await _record(
        ctx, exchange_id, f"coordinator-{kind}-prepared:{exchange_id}:{document.header.document_id}"
    )
    name = f"{kind}-{document.header.document_id.replace(':', '_')}.xml"
    return Download(to_bytes(document), name, "application/xml")


@action("coordinator/upload", roles=COORDINATOR)
async def upload(ctx: Context) -> Redirect:
    """A document the coordinator signed with its own key: the desk checks and submits it."""
    desk, coordinator = _desk(ctx)
    exchange_id = ctx.required("exchange")
    await _exchange_in_scope(ctx, desk, coordinator, exchange_id)
    values = ctx.form.get("document") or []
    text = values[0] if values else ""
    if not text.strip():
        raise ConsoleInputInvalid("document: choose the signed document file")
    body = text.encode("utf-8")
    if len(body) > MAX_UPLOAD:
        raise ConsoleInputInvalid(f"document: at most {MAX_UPLOAD} bytes")
    await _submit(ctx, desk, coordinator, exchange_id, f"coordinator-upload:{exchange_id}", body)
    return Redirect(_exchange_path(exchange_id), "flash.coordinator_uploaded")
