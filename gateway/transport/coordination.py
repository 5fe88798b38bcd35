"""``/api/v1/coordination``: the coordinators' endpoints on the national-system listener.

Mounted under the listener's guard (``transport.api.api_root``'s ``extra``),
so the caller is authenticated by its client certificate before any of this
runs; :class:`~gateway.service.coordinators.CoordinatorDesk` decides whether
the caller is a coordinator and what it may see or do.

* ``GET /api/v1/coordination/exchanges?view=all|overdue|disputed|escalated``:
  a ``CoordinatorExchanges`` list (metadata only).
* ``POST /api/v1/coordination/documents``: a signed coordinator document;
  answers the node-signed receipt.

Endpoints, documents and error codes are described in docs/api.md and
docs/coordinators.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lxml import etree

from gateway.core.docxml import format_datetime, new_root
from gateway.core.ns import DOC_NS
from gateway.service.coordinators import VIEWS, CoordinatorDesk, CoordinatorView
from gateway.transport.api import BadParameter, _Endpoint, _Tree, caller

__all__ = ["coordination_tree", "exchanges_xml"]


def exchanges_xml(coordinator: str, view: str, items: Sequence[CoordinatorView]) -> bytes:
    """The ``CoordinatorExchanges`` answer: one ``Exchange`` element per exchange."""
    root = new_root("CoordinatorExchanges")
    root.set("coordinator", coordinator)
    root.set("view", view)
    for item in items:
        ex = item.exchange
        element = etree.SubElement(
            root,
            f"{{{DOC_NS}}}Exchange",
            id=ex.exchange_id,
            state=ex.state,
            requester=ex.requester_authority,
            responder=ex.responder_authority,
            area=ex.area,
            updated=format_datetime(ex.updated_at),
            escalations=str(item.escalations),
        )
        if ex.acceptance_due_at is not None:
            element.set("acceptanceDue", format_datetime(ex.acceptance_due_at))
        if ex.reply_due_at is not None:
            element.set("replyDue", format_datetime(ex.reply_due_at))
            element.set("replyDateAgreed", "true" if ex.reply_date_agreed else "false")
        if item.overdue:
            element.set("overdue", item.overdue)
        if ex.resumes_to is not None:
            element.set("disputedIn", ex.resumes_to)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


class CoordinatorExchangesResource(_Endpoint):
    """GET /api/v1/coordination/exchanges?view=...: exchanges needing the caller's attention."""

    def __init__(self, desk: CoordinatorDesk) -> None:
        super().__init__()
        self._desk = desk

    def render_GET(self, request: Any) -> Any:
        async def handle() -> bytes:
            who = caller(request)
            raw = request.args.get(b"view", [b"all"])[0].decode("ascii", "replace")
            if raw not in VIEWS:
                raise BadParameter(f"view must be one of {', '.join(VIEWS)}")
            items = await self._desk.exchanges(who, raw)
            return exchanges_xml(who, raw, items)

        return self._respond(request, handle)


class CoordinatorDocumentsResource(_Endpoint):
    """POST /api/v1/coordination/documents: a coordinator's signed document; the receipt."""

    def __init__(self, desk: CoordinatorDesk) -> None:
        super().__init__()
        self._desk = desk

    def render_POST(self, request: Any) -> Any:
        async def handle() -> bytes:
            who = caller(request)
            receipt: bytes = await self._desk.submit(who, request.content.getvalue())
            return receipt

        return self._respond(request, handle)


def coordination_tree(desk: CoordinatorDesk) -> _Tree:
    """The ``coordination`` subtree, for ``api_root(extra={b"coordination": ...})``."""
    tree = _Tree()
    tree.putChild(b"exchanges", CoordinatorExchangesResource(desk))
    tree.putChild(b"documents", CoordinatorDocumentsResource(desk))
    return tree
