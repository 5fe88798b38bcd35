"""``/peer/v1/audit/checkpoints``: peers exchange signed audit checkpoints (docs/api.md).

* ``GET``: the ``HeldCheckpoint`` this node holds of the calling peer (size 0
  when none), so the peer knows from which size to prove consistency;
* ``POST`` a ``CheckpointOffer``: the peer's newest signed checkpoint, the
  consistency proof and its time-stamp token; answers the ``HeldCheckpoint``
  after it, or an Error document (AUDIT_CHECKPOINT_INCONSISTENT, 409, when
  the peer rewrote its history).

Mounted under the peer listener's guard (``transport.api.peer_root``'s
``extra``), which names the calling peer from its pinned TLS certificate;
the decisions are the service's (``service/audit_checkpoints.py``).
"""

from __future__ import annotations

from typing import Any

from twisted.web.resource import Resource

from gateway.core.errors import NotFound
from gateway.service.audit_checkpoints import AuditCheckpointService
from gateway.transport.api import _Endpoint, _Tree, caller


class AuditCheckpointsResource(_Endpoint):
    """GET / POST /peer/v1/audit/checkpoints (see the module docstring)."""

    listener = "peer"

    def __init__(self, service: AuditCheckpointService) -> None:
        super().__init__()
        self._service = service

    def _no_subpath(self, request: Any) -> None:
        if [p for p in request.postpath if p]:
            raise NotFound("no endpoint has this path (see docs/api.md)")

    def render_GET(self, request: Any) -> Any:
        async def handle() -> bytes:
            peer = caller(request)
            self._no_subpath(request)
            return await self._service.held(peer)

        return self._respond(request, handle)

    def render_POST(self, request: Any) -> Any:
        async def handle() -> bytes:
            peer = caller(request)
            self._no_subpath(request)
            return await self._service.receive(peer, request.content.getvalue())

        return self._respond(request, handle)


def audit_tree(service: AuditCheckpointService) -> Resource:
    """The ``audit`` subtree of ``/peer/v1`` (mount it with ``peer_root(extra=...)``)."""
    tree = _Tree()
    tree.putChild(b"checkpoints", AuditCheckpointsResource(service))
    return tree
