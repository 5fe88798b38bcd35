"""The HTTPS APIs: national systems (``/api/v1``) and peer nodes (``/peer/v1``).

Both listeners require a TLS client certificate. The root of each
listener's tree is a :class:`ListenerGuard`: it names the caller from the
certificate *before* any child resource is looked up or rendered, answers
an Error document (401) when the certificate is not acceptable, and hands
the caller to the resources through :func:`caller` (an attribute only the
guard sets). No resource identifies the caller itself, so a resource added
to either tree cannot forget the check. Resources only translate HTTP to
calls on the service layer and results back to HTTP: they read the capped
body and turn a ``GatewayError`` into an Error document with the error's
HTTP status.
Endpoints, documents and error codes are described in docs/api.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any
from xml.sax.saxutils import quoteattr

from cryptography import x509
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.error import UnsupportedMethod
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from gateway.core.errors import GatewayError, InvalidInput, NotFound, Unauthorized
from gateway.core.ns import DOC_NS
from gateway.service.deliveries import Deliveries, HandedOut
from gateway.service.pipeline import PayloadRefused, Pipeline
from gateway.service.tracking import TrackingQueries
from gateway.transport.http import XML_CONTENT_TYPE, write_error
from gateway.transport.tls import connection_certificate, peer_certificate

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


#: The request attribute holding the authenticated caller; only ``ListenerGuard`` sets it.
_CALLER_ATTRIBUTE = "imi_gateway_caller"

#: Names the caller from a TLS client certificate, or raises an ``Unauthorized`` error.
Identify = Callable[[x509.Certificate | None], str]


def caller(request: Any) -> str:
    """The caller the listener's guard authenticated (fails closed outside a guard)."""
    name = getattr(request, _CALLER_ATTRIBUTE, None)
    if not isinstance(name, str):
        raise Unauthorized("the caller was not authenticated")
    return name


class _Refused(Resource):
    isLeaf = True

    def __init__(self, error: GatewayError) -> None:
        super().__init__()
        self._error = error

    def render(self, request: Any) -> bytes:
        return write_error(request, self._error)


class ListenerGuard(Resource):
    """The root of an HTTPS listener: every request is authenticated here, before routing.

    ``identify`` is called with the connection's client certificate for each
    request (it reads the node's current trust, so a reload applies to the
    next request, also on a connection already open).
    """

    def __init__(self, inner: Resource, identify: Identify, listener: str) -> None:
        super().__init__()
        self.inner = inner
        self._identify = identify
        self.listener = listener

    def _admit(self, request: Any) -> GatewayError | None:
        try:
            setattr(request, _CALLER_ATTRIBUTE, self._identify(peer_certificate(request)))
        except GatewayError as error:
            log.info(
                "Refused a {listener} request: {code}", listener=self.listener, code=error.code
            )
            return error
        return None

    def putChild(self, path: bytes, child: Resource) -> None:
        raise TypeError("mount resources on the guarded tree (ListenerGuard.inner)")

    def getChildWithDefault(self, path: bytes, request: Any) -> Resource:
        refused = self._admit(request)
        if refused is not None:
            return _Refused(refused)
        return self.inner.getChildWithDefault(path, request)  # type: ignore[no-any-return]

    def render(self, request: Any) -> Any:
        refused = self._admit(request)
        if refused is not None:
            return write_error(request, refused)
        return self.inner.render(request)

    def close_untrusted(self, channels: Iterable[Any]) -> int:
        """Close the open connections whose client certificate is no longer accepted.

        Connections still in their TLS handshake (no certificate yet) are left
        alone: the guard checks them at their first request.
        """
        closed = 0
        for channel in list(channels):
            transport = channel.transport
            cert = connection_certificate(transport) if transport is not None else None
            if cert is None:
                continue
            try:
                self._identify(cert)
            except GatewayError:
                transport.abortConnection()
                closed += 1
        return closed


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

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__()
        self._pipeline = pipeline

    def render_POST(self, request: Any) -> Any:
        def handle() -> Deferred[bytes]:
            authority = caller(request)
            body = request.content.getvalue()
            return ensureDeferred(self._pipeline.submit(authority, body))

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

    def __init__(self, deliveries: Deliveries, max_wait: float) -> None:
        super().__init__()
        self._deliveries = deliveries
        self._max_wait = max_wait

    def render_GET(self, request: Any) -> Any:
        def handle() -> Deferred[bytes]:
            authority = caller(request)
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

    def __init__(self, query: Callable[[str, str], Any], listener: str) -> None:
        super().__init__()
        self._query = query
        self.listener = listener

    def render_GET(self, request: Any) -> Any:
        def handle() -> Deferred[bytes]:
            who = caller(request)
            if len(request.postpath) != 1 or not request.postpath[0]:
                raise NotFound("name one exchange: .../exchanges/{exchange id}")
            exchange_id = request.postpath[0].decode("utf-8", "replace")
            return ensureDeferred(self._query(exchange_id, who))

        return self._respond(request, handle)


class EnvelopeResource(_Endpoint):
    """POST /peer/v1/envelopes: a peer node's signed envelope; answers the signed receipt."""

    listener = "peer"

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__()
        self._pipeline = pipeline

    def render_POST(self, request: Any) -> Any:
        def handle() -> Deferred[bytes]:
            peer = caller(request)
            return ensureDeferred(self._pipeline.receive_envelope(peer, request.content.getvalue()))

        return self._respond(request, handle)


def api_root(
    *,
    pipeline: Pipeline,
    deliveries: Deliveries,
    tracking: TrackingQueries,
    identify: Identify,
    max_wait: float,
    extra: Mapping[bytes, Resource] = {},
) -> ListenerGuard:
    """The national-system listener's tree, behind its guard (``identify`` names authorities)."""
    root = _Tree()
    api = _Tree()
    v1 = _Tree()
    root.putChild(b"api", api)
    api.putChild(b"v1", v1)
    v1.putChild(b"documents", SubmitResource(pipeline))
    v1.putChild(b"deliveries", DeliveriesResource(deliveries, max_wait))
    v1.putChild(b"exchanges", TrackingResource(tracking.record_xml, "api"))
    for name, resource in extra.items():
        v1.putChild(name, resource)
    return ListenerGuard(root, identify, "national-system API")


def peer_root(
    *,
    pipeline: Pipeline,
    tracking: TrackingQueries,
    identify: Identify,
    extra: Mapping[bytes, Resource] = {},
) -> ListenerGuard:
    """The peer listener's tree, behind its guard (``identify`` names peer nodes)."""
    root = _Tree()
    peer = _Tree()
    v1 = _Tree()
    root.putChild(b"peer", peer)
    peer.putChild(b"v1", v1)
    v1.putChild(b"envelopes", EnvelopeResource(pipeline))
    v1.putChild(b"exchanges", TrackingResource(tracking.peer_record_xml, "peer"))
    for name, resource in extra.items():
        v1.putChild(name, resource)
    return ListenerGuard(root, identify, "peer API")
