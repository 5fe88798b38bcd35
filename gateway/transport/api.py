"""The HTTPS APIs: national systems (``/api/v1``) and peer nodes (``/peer/v1``).

Both listeners require a TLS client certificate. Resources here only
translate HTTP to calls on the service layer and results back to HTTP: they
name the caller from its certificate, read the capped body, and turn a
``GatewayError`` into an Error document with the error's HTTP status.
Endpoints, documents and error codes are described in docs/api.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from xml.sax.saxutils import quoteattr

from cryptography import x509
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.error import UnsupportedMethod
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from gateway.core.errors import GatewayError, InvalidInput, NotFound
from gateway.core.ns import DOC_NS
from gateway.service.deliveries import Deliveries, HandedOut
from gateway.service.pipeline import PayloadRefused, Pipeline
from gateway.service.tracking import TrackingQueries
from gateway.transport.http import XML_CONTENT_TYPE, write_error
from gateway.transport.tls import authority_identity, peer_identity

log = Logger()


class BadParameter(InvalidInput):
    """A query parameter is missing or malformed."""

    code = "PARAMETER_INVALID"


class MethodNotAllowed(InvalidInput):
    """This endpoint does not take that HTTP method."""

    code = "METHOD_NOT_ALLOWED"
    http_status = 405


def _int_arg(request: Any, name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name.encode(), [None])[0]
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise BadParameter(f"{name} must be between {low} and {high}")
    return value


class _Tree(Resource):
    """An inner node of the URL tree: unknown paths answer an Error document (404)."""

    def getChild(self, path: bytes, request: Any) -> Resource:
        return _Missing()

    def render(self, request: Any) -> bytes:
        return _Missing().render(request)


class _Missing(Resource):
    isLeaf = True

    def render(self, request: Any) -> bytes:
        return write_error(request, NotFound("no endpoint has this path (see docs/api.md)"))


class _Endpoint(Resource):
    """A leaf that runs one async handler and answers XML or an Error document."""

    isLeaf = True
    listener = "api"

    def render(self, request: Any) -> Any:
        try:
            return super().render(request)
        except UnsupportedMethod as unsupported:
            allowed = [m.decode("ascii") for m in unsupported.allowedMethods]
            if "GET" not in allowed:  # twisted.web offers HEAD only as a GET without body
                allowed = [m for m in allowed if m != "HEAD"]
            request.setHeader(b"Allow", ", ".join(allowed).encode("ascii"))
            return write_error(
                request, MethodNotAllowed(f"this endpoint takes {' or '.join(allowed)}")
            )

    def _respond(self, request: Any, handler: Callable[[], Deferred[bytes]]) -> Any:
        finished = request.notifyFinish()
        gone = []
        finished.addErrback(lambda _: gone.append(True))

        def ok(body: bytes) -> None:
            if gone:
                return
            request.setHeader(b"Content-Type", XML_CONTENT_TYPE)
            request.write(body)
            request.finish()

        def failed(failure: Failure) -> None:
            if gone:
                return
            if failure.check(GatewayError):
                error = failure.value
                if isinstance(error, PayloadRefused):
                    # The cause's code and status; MessageId names the refused document.
                    body = write_error(request, error.cause, error.message_id)
                else:
                    body = write_error(request, error)
            else:
                log.failure(
                    "Unexpected error in {listener} handler", failure, listener=self.listener
                )
                body = write_error(
                    request, GatewayError("internal error; the operator has the details")
                )
            request.write(body)
            request.finish()

        try:
            d = handler()
        except GatewayError as error:
            d = Deferred()
            d.errback(error)
        d.addCallbacks(ok, failed)
        return NOT_DONE_YET


class SubmitResource(_Endpoint):
    """POST /api/v1/documents: submit a signed exchange document; answers the signed receipt."""

    def __init__(self, pipeline: Pipeline, identify: Callable[[Any], str]) -> None:
        super().__init__()
        self._pipeline = pipeline
        self._identify = identify

    def render_POST(self, request: Any) -> Any:
        def handle() -> Deferred[bytes]:
            authority = self._identify(request)
            body = request.content.getvalue()
            return self._pipeline.submit(authority, body)  # type: ignore[no-any-return]

        return self._respond(request, handle)


def deliveries_document(handed: list[HandedOut], cursor: int) -> bytes:
    """The pull answer: each node-signed Delivery, base64, with its cursor."""
    import base64

    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Deliveries xmlns="{DOC_NS}" cursor="{cursor}">'
    ]
    for item in handed:
        parts.append(
            f'<Item seq="{item.seq}" messageId={quoteattr(item.message_id)}>'
            f"{base64.b64encode(item.delivery).decode('ascii')}</Item>"
        )
    parts.append("</Deliveries>\n")
    return "".join(parts).encode()


class DeliveriesResource(_Endpoint):
    """GET /api/v1/deliveries?after=N&wait=S&limit=L: acknowledge up to N, fetch what follows."""

    def __init__(
        self, deliveries: Deliveries, identify: Callable[[Any], str], max_wait: float
    ) -> None:
        super().__init__()
        self._deliveries = deliveries
        self._identify = identify
        self._max_wait = max_wait

    def render_GET(self, request: Any) -> Any:
        def handle() -> Deferred[bytes]:
            authority = self._identify(request)
            after = _int_arg(request, "after", 0, 0, 2**62)
            wait = _int_arg(request, "wait", 0, 0, int(self._max_wait))
            limit = _int_arg(request, "limit", 100, 1, 500)
            d = self._deliveries.pull(authority, after=after, wait=wait, limit=limit)
            return d.addCallback(lambda r: deliveries_document(r[0], r[1]))  # type: ignore[no-any-return]

        return self._respond(request, handle)


class TrackingResource(_Endpoint):
    """GET .../exchanges/{id}: a tracking record, shown only to whom the exchange involves.

    On the national-system API the caller is an authority and gets both nodes'
    stages; on the peer API the caller is a peer node and gets this node's own.
    """

    def __init__(
        self,
        query: Callable[[str, str], Any],
        identify: Callable[[Any], str],
        listener: str,
    ) -> None:
        super().__init__()
        self._query = query
        self._identify = identify
        self.listener = listener

    def render_GET(self, request: Any) -> Any:
        def handle() -> Deferred[bytes]:
            caller = self._identify(request)
            if len(request.postpath) != 1 or not request.postpath[0]:
                raise NotFound("name one exchange: .../exchanges/{exchange id}")
            exchange_id = request.postpath[0].decode("utf-8", "replace")
            return ensureDeferred(self._query(exchange_id, caller))

        return self._respond(request, handle)


class EnvelopeResource(_Endpoint):
    """POST /peer/v1/envelopes: a peer node's signed envelope; answers the signed receipt."""

    listener = "peer"

    def __init__(self, pipeline: Pipeline, identify: Callable[[Any], str]) -> None:
        super().__init__()
        self._pipeline = pipeline
        self._identify = identify

    def render_POST(self, request: Any) -> Any:
        def handle() -> Deferred[bytes]:
            peer = self._identify(request)
            return self._pipeline.receive_envelope(peer, request.content.getvalue())  # type: ignore[no-any-return]

        return self._respond(request, handle)


def national_identifier(
    registered: Callable[[], Mapping[str, tuple[x509.Certificate, ...]]],
    revoked: Callable[[], frozenset[str]],
) -> Callable[[Any], str]:
    return lambda request: authority_identity(request, registered(), revoked())[0]


def peer_identifier(pinned: Callable[[], Mapping[str, x509.Certificate]]) -> Callable[[Any], str]:
    return lambda request: peer_identity(request, pinned())


def api_root(
    *,
    pipeline: Pipeline,
    deliveries: Deliveries,
    tracking: TrackingQueries,
    identify: Callable[[Any], str],
    max_wait: float,
    extra: Mapping[bytes, Resource] = {},
) -> Resource:
    root = _Tree()
    api = _Tree()
    v1 = _Tree()
    root.putChild(b"api", api)
    api.putChild(b"v1", v1)
    v1.putChild(b"documents", SubmitResource(pipeline, identify))
    v1.putChild(b"deliveries", DeliveriesResource(deliveries, identify, max_wait))
    v1.putChild(b"exchanges", TrackingResource(tracking.record_xml, identify, "api"))
    for name, resource in extra.items():
        v1.putChild(name, resource)
    return root


def peer_root(
    *,
    pipeline: Pipeline,
    tracking: TrackingQueries,
    identify: Callable[[Any], str],
    extra: Mapping[bytes, Resource] = {},
) -> Resource:
    root = _Tree()
    peer = _Tree()
    v1 = _Tree()
    root.putChild(b"peer", peer)
    peer.putChild(b"v1", v1)
    v1.putChild(b"envelopes", EnvelopeResource(pipeline, identify))
    v1.putChild(b"exchanges", TrackingResource(tracking.peer_record_xml, identify, "peer"))
    for name, resource in extra.items():
        v1.putChild(name, resource)
    return root
