"""The health and metrics listener: plain HTTP, meant for loopback or a private network.

* ``GET /health``: 200 ``ok`` while the node is up and its database answers,
  503 otherwise (for load balancers and process supervisors);
* ``GET /metrics``: Prometheus text exposition of the node's registry.

Nothing here exposes personal data, documents or keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET


class HealthResource(Resource):
    isLeaf = True

    def __init__(self, check: Callable[[], Deferred[Any]]) -> None:
        super().__init__()
        self._check = check

    def render_GET(self, request: Any) -> Any:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")

        def ok(_: object) -> None:
            request.write(b"ok\n")
            request.finish()

        def failed(_: object) -> None:
            request.setResponseCode(503)
            request.write(b"unavailable: database check failed\n")
            request.finish()

        self._check().addCallbacks(ok, failed)
        return NOT_DONE_YET


class MetricsResource(Resource):
    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._registry = registry

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self._registry)


def health_root(check: Callable[[], Deferred[Any]], registry: CollectorRegistry) -> Resource:
    root = Resource()
    root.putChild(b"health", HealthResource(check))
    root.putChild(b"metrics", MetricsResource(registry))
    return root
