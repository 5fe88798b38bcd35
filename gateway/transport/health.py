"""The health and metrics listener: plain HTTP, meant for loopback or a private network.

It has no client authentication by design, so its routes are an explicit
public allow-list (:data:`PUBLIC_ROUTES`); any other path answers 404:

* ``GET /health``: liveness: 200 ``ok`` while the node is up and its database
  answers, 503 otherwise (for process supervisors);
* ``GET /ready``: readiness: 200 ``ready`` when the node can do its work
  (database, keys, listeners, every peer's trust; see gateway.node.readiness),
  503 with one reason a line otherwise (for load balancers and orchestrators);
* ``GET /metrics``: Prometheus text exposition of the node's registry;
* ``POST /translation/etranslation/...``: eTranslation's callbacks, only when
  that engine is configured; each is authenticated by the one-time token in
  its URL (see gateway.adapters.translation).

Nothing here exposes personal data, documents or keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from twisted.internet.defer import Deferred
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET

from gateway.transport.http import TypedResource


class HealthResource(TypedResource):
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


class ReadyResource(TypedResource):
    """``GET /ready``: 200 ``ready``, or 503 ``not ready`` and one ``CODE: reason`` a line."""

    isLeaf = True

    def __init__(self, check: Callable[[], Deferred[list[str]]]) -> None:
        super().__init__()
        self._check = check

    def render_GET(self, request: Any) -> Any:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")

        def answer(reasons: list[str]) -> None:
            if reasons:
                request.setResponseCode(503)
                request.write(("not ready\n" + "".join(f"{r}\n" for r in reasons)).encode())
            else:
                request.write(b"ready\n")
            request.finish()

        def failed(_: object) -> None:
            answer(["READINESS_CHECK_FAILED: the readiness check itself failed"])

        self._check().addCallbacks(answer, failed)
        return NOT_DONE_YET


class MetricsResource(TypedResource):
    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._registry = registry

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self._registry)


#: Every path the health listener answers (a prefix for the translation callback).
PUBLIC_ROUTES = ("/health", "/ready", "/metrics", "/translation/etranslation/")


class _PublicRoot(TypedResource):
    """A root that serves exactly its allow-list: children cannot be added after building."""

    def __init__(self, routes: dict[bytes, Resource]) -> None:
        super().__init__()
        self._routes = routes

    def getChild(self, path: bytes, request: Any) -> IResource:
        return self._routes.get(path) or notFound()

    def getChildWithDefault(self, path: bytes, request: Any) -> IResource:
        return self.getChild(path, request)

    def putChild(self, path: bytes, child: IResource) -> None:
        raise TypeError("the health listener's routes are fixed by health_root")

    def render(self, request: Any) -> bytes:
        page: bytes = notFound().render(request)  # type: ignore[no-untyped-call]  # IResource.render is untyped
        return page

    @property
    def routes(self) -> dict[bytes, Resource]:
        return dict(self._routes)


def health_root(
    check: Callable[[], Deferred[Any]],
    registry: CollectorRegistry,
    translation_callback: Resource | None = None,
    ready: Callable[[], Deferred[list[str]]] | None = None,
) -> Resource:
    """The health listener's root: the public allow-list and nothing else."""
    routes: dict[bytes, Resource] = {
        b"health": HealthResource(check),
        b"metrics": MetricsResource(registry),
    }
    if ready is not None:
        routes[b"ready"] = ReadyResource(ready)
    if translation_callback is not None:
        # eTranslation cannot present a client certificate: its callbacks (authenticated by
        # a one-time token in the URL) come through the operator's reverse proxy to here.
        translation = TypedResource()
        translation.putChild(b"etranslation", translation_callback)
        routes[b"translation"] = translation
    return _PublicRoot(routes)
