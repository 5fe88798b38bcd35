"""HTTP server plumbing shared by every listener: size caps, deadlines, errors.

twisted.web's stock ``Request`` spools bodies over 100 kB to a temporary
file and its idle timeout is reset by every byte, so a client can fill the
disk or hold a connection open by trickling bytes (slowloris). This module
replaces both:

* :class:`LimitedRequest` buffers bodies in memory only, refuses a declared
  ``Content-Length`` over the cap with 413 *before reading any of the body*,
  and stops a chunked body with 413 the moment it passes the cap;
* :class:`LimitedChannel` gives every request a total deadline, from its
  first byte to its last, after which the connection is answered 408 and
  closed; requests on other connections are not affected;
* :class:`LimitedChannel` also closes a connection that has not completed
  its TLS handshake and sent its first request bytes within the handshake
  timeout (an idle or half-open connection costs a file descriptor and
  memory), and answers a request line or header block over the header limit
  at once with 431 ``HEADERS_TOO_LARGE`` instead of waiting for the rest;
* :class:`LimitedSite` caps the connections open at once on its listener:
  one over the cap is closed as soon as it is accepted, before any TLS state
  is made for it, counted, and logged at most once a minute;
  :meth:`LimitedSite.listening_factory` is the factory to listen with
  (wrapped in TLS when given TLS options).

Error responses are protocol ``Error`` documents (see docs/protocol.md) with
the error's stable code; they never echo request content.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, Protocol, cast

from lxml import etree
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IProtocolFactory, IReactorTime, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.error import UnsupportedMethod
from twisted.web.resource import IResource, Resource

from gateway.core.envelopes import build_error
from gateway.core.errors import DocumentTooLarge, GatewayError, InvalidInput

log = Logger()

XML_CONTENT_TYPE = b"application/xml; charset=utf-8"


class WebRequest(Protocol):
    """What the resources use of a twisted.web request (whose methods Twisted leaves untyped)."""

    args: dict[bytes, list[bytes]] | None

    def setResponseCode(self, code: int, message: bytes | None = None) -> None: ...

    def setHeader(self, name: bytes, value: bytes) -> None: ...

    def getHeader(self, key: bytes) -> bytes | None: ...

    def write(self, data: bytes) -> None: ...

    def finish(self) -> None: ...

    def notifyFinish(self) -> Deferred[None]: ...


class TypedResource(Resource):
    """twisted.web's Resource with a typed constructor and render (Twisted leaves them untyped)."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Resource.__init__ is untyped

    def render(self, request: Any) -> Any:
        """Render; a method the resource does not take is refused with an Error document.

        twisted.web's default is an HTML error page; every refusal of this
        node is an Error document with a stable code, so a national system's
        or a peer's parser never meets HTML.
        """
        try:
            return super().render(request)  # type: ignore[no-untyped-call]  # Resource.render is untyped
        except UnsupportedMethod as unsupported:
            methods: tuple[bytes, ...] = tuple(unsupported.allowedMethods)
            allowed = [m.decode("ascii") for m in methods]
            if "GET" not in allowed:  # twisted.web offers HEAD only as a GET without body
                allowed = [m for m in allowed if m != "HEAD"]
            request.setHeader(b"Allow", ", ".join(allowed).encode("ascii"))
            return write_error(
                request, MethodNotAllowed(f"this endpoint takes {' or '.join(allowed)}")
            )

    def getChildWithDefault(self, path: bytes, request: Any) -> IResource:
        child: IResource = super().getChildWithDefault(path, request)  # type: ignore[no-untyped-call]  # untyped in Twisted
        return child


class MethodNotAllowed(InvalidInput):
    """This endpoint does not take that HTTP method."""

    code = "METHOD_NOT_ALLOWED"
    http_status = 405


class RequestTimeout(InvalidInput):
    """The request did not arrive in full within the listener's request deadline; the connection is closed."""

    code = "REQUEST_TIMEOUT"
    http_status = 408


class HeadersTooLarge(InvalidInput):
    """The request line or headers exceed the listener's header limit; the connection is closed."""

    code = "HEADERS_TOO_LARGE"
    http_status = 431


def error_body(code: str, message: str, message_id: str | None = None) -> bytes:
    """An (unsigned) protocol Error document; TLS authenticates the node that sends it."""
    root = build_error(code, message, message_id=message_id)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _raw_response(status: int, reason: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n" % (status, reason, XML_CONTENT_TYPE, len(body))
    ) + body


class _Discard:
    """A content sink for a refused body: counts nothing, keeps nothing."""

    def write(self, data: bytes) -> None:
        pass

    def seek(self, *args: Any) -> None:
        pass

    def read(self, *args: Any) -> bytes:
        return b""

    def close(self) -> None:
        pass


class LimitedRequest(server.Request):
    """A request whose body is capped and kept in memory only."""

    max_body_bytes: int = 16 * 1024 * 1024
    channel: LimitedChannel

    _refused = False
    _received = 0

    def gotLength(self, length: int | None) -> None:
        cap = self.channel.site.max_body_bytes
        if length is not None and length > cap:
            self._refuse_too_large(cap)
            return
        self.content = io.BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        cap = self.channel.site.max_body_bytes
        if self._received > cap:
            self._refuse_too_large(cap)
            return
        assert self.content is not None, "gotLength runs before the body"
        self.content.write(data)

    def _refuse_too_large(self, cap: int) -> None:
        self._refused = True
        self.content = _Discard()
        error = DocumentTooLarge(f"the request body exceeds the limit of {cap} bytes")
        log.info(
            "Refused an oversize request body from {peer}",
            peer=str(self.getClientAddress()),  # type: ignore[no-untyped-call]  # untyped in Twisted
        )
        self.channel.connection.write(
            _raw_response(413, b"Payload Too Large", error_body(error.code, str(error)))
        )
        self.channel.refuse_rest()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            return
        super().requestReceived(command, path, version)  # type: ignore[no-untyped-call]  # untyped in Twisted


class LimitedChannel(http.HTTPChannel):
    """An HTTP/1.1 channel with a handshake timeout, a header limit and a per-request deadline."""

    site: LimitedSite
    _handshake_call: IDelayedCall | None = None
    _deadline_call: IDelayedCall | None = None
    _abort_call: IDelayedCall | None = None
    _refusing = False
    _header_bytes = 0

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # untyped in Twisted

    @property
    def connection(self) -> ITCPTransport:
        """The connection (TCP, or TLS over it): write, getPeer, abortConnection."""
        return cast(ITCPTransport, self.transport)

    def connectionMade(self) -> None:
        # Under TLS this runs when the TCP connection is accepted, before the
        # handshake; dataReceived runs only with decrypted request bytes.
        super().connectionMade()  # type: ignore[no-untyped-call]  # untyped in Twisted
        cap = self.site.max_header_bytes
        self.MAX_LENGTH = cap  # one line over the limit: lineLengthExceeded
        self.totalHeadersSize = 2 * cap  # never reached: lineReceived counts first
        self._handshake_call = self.callLater(  # type: ignore[no-untyped-call]  # untyped in Twisted
            self.site.handshake_timeout_seconds, self._handshake_expired
        )

    def _handshake_expired(self) -> None:
        self._handshake_call = None
        # No request has started: nothing to answer, and a TLS close could wait on the client.
        self._refusing = True
        self.site.handshake_timeouts += 1
        self.connection.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._refusing:
            return
        if self._handshake_call is not None:
            if self._handshake_call.active():
                self._handshake_call.cancel()
            self._handshake_call = None
        if self._deadline_call is None and not self._handlingRequest:
            deadline = self.site.request_deadline_seconds
            self._deadline_call = self.callLater(deadline, self._deadline_expired)  # type: ignore[no-untyped-call]  # untyped in Twisted
        super().dataReceived(data)  # type: ignore[no-untyped-call]  # untyped in Twisted

    def lineReceived(self, line: bytes) -> None:
        if self._refusing:
            return
        self._header_bytes += len(line) + 2
        if self._header_bytes > self.site.max_header_bytes:
            self._refuse_headers()
            return
        super().lineReceived(line)  # type: ignore[no-untyped-call]  # untyped in Twisted

    def lineLengthExceeded(self, line: bytes) -> None:
        if not self._refusing:
            self._refuse_headers()

    def _refuse_headers(self) -> None:
        cap = self.site.max_header_bytes
        log.info(
            "Refused a request whose headers exceed {cap} bytes from {peer}",
            cap=cap,
            peer=str(self.connection.getPeer()),
        )
        error = HeadersTooLarge(f"the request line and headers exceed the limit of {cap} bytes")
        body = error_body(error.code, str(error))
        self.connection.write(_raw_response(431, b"Request Header Fields Too Large", body))
        self.refuse_rest()

    def allContentReceived(self) -> None:
        self._cancel_deadline()
        self._header_bytes = 0
        super().allContentReceived()  # type: ignore[no-untyped-call]  # untyped in Twisted

    def _cancel_deadline(self) -> None:
        if self._deadline_call is not None and self._deadline_call.active():
            self._deadline_call.cancel()
        self._deadline_call = None

    def _deadline_expired(self) -> None:
        self._deadline_call = None
        if self._handlingRequest:
            return
        log.info(
            "Request not received within {seconds}s; closing the connection from {peer}",
            seconds=self.site.request_deadline_seconds,
            peer=str(self.connection.getPeer()),
        )
        error = RequestTimeout("the request was not received in time")
        body = error_body(error.code, str(error))
        self.connection.write(_raw_response(408, b"Request Timeout", body))
        self.refuse_rest()

    def refuse_rest(self) -> None:
        """Stop reading from this connection and close it."""
        self._refusing = True
        self._cancel_deadline()
        # The channel's loseConnection (not the transport's): it unregisters the
        # channel as the transport's producer first, without which a TLS
        # transport never sends its close alert and the connection would hang
        # until the abort below.
        self.loseConnection()  # type: ignore[no-untyped-call]  # untyped in Twisted
        # A client that keeps sending is cut off for good after a grace period.
        self._abort_call = self.callLater(5, self.connection.abortConnection)  # type: ignore[no-untyped-call]  # untyped in Twisted

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.site.channels.discard(self)
        if self._handshake_call is not None and self._handshake_call.active():
            self._handshake_call.cancel()
        self._handshake_call = None
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._abort_call = None
        self._cancel_deadline()
        super().connectionLost(reason)  # type: ignore[no-untyped-call]  # untyped in Twisted


class LimitedSite(server.Site):
    """A Site with body, header, time and connection limits, on an injected reactor."""

    requestFactory = LimitedRequest

    def __init__(
        self,
        resource: Resource,
        *,
        reactor: IReactorTime,
        max_body_bytes: int,
        request_deadline_seconds: float,
        idle_timeout_seconds: float = 120,
        handshake_timeout_seconds: float = 10,
        max_header_bytes: int = 16 * 1024,
        max_connections: int = 1000,
        name: str = "listener",
        on_connection_refused: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(resource, reactor=reactor, timeout=idle_timeout_seconds)  # type: ignore[no-untyped-call]  # untyped in Twisted
        self.max_body_bytes = max_body_bytes
        self.request_deadline_seconds = request_deadline_seconds
        self.handshake_timeout_seconds = handshake_timeout_seconds
        self.max_header_bytes = max_header_bytes
        self.max_connections = max_connections
        self.name = name
        self._on_connection_refused = on_connection_refused
        self.channels: set[LimitedChannel] = set()
        self.displayTracebacks = False
        #: Connections refused over the cap, and closed by the handshake timeout (for tests).
        self.refused_connections = 0
        self.handshake_timeouts = 0
        self._refusals_unlogged = 0
        self._refusal_logged_at: float | None = None

    def listening_factory(self, tls: Any = None) -> IProtocolFactory:
        """The factory to listen with: this site, behind TLS when ``tls`` options are given.

        Either way a connection over the cap is closed at accept time, before
        any TLS or HTTP state is created for it.
        """
        if tls is None:
            return self
        return _CappedTLSFactory(tls, False, self)

    def at_capacity(self) -> bool:
        """True (and the refusal counted) when a new connection would pass the cap."""
        if len(self.channels) < self.max_connections:
            return False
        self.refused_connections += 1
        self._refusals_unlogged += 1
        if self._on_connection_refused is not None:
            self._on_connection_refused()
        now = self.reactor.seconds()
        if self._refusal_logged_at is None or now - self._refusal_logged_at >= 60:
            log.warn(
                "{listener}: {count} connection(s) refused since the last report: "
                "{limit} connections are open, the limit (reported at most once a minute)",
                listener=self.name,
                count=self._refusals_unlogged,
                limit=self.max_connections,
            )
            self._refusal_logged_at = now
            self._refusals_unlogged = 0
        return True

    def buildProtocol(self, addr: Any) -> LimitedChannel | None:  # type: ignore[override]  # None refuses the connection
        if self.at_capacity():  # plain HTTP; under TLS checked first by _CappedTLSFactory
            return None
        channel = LimitedChannel()
        channel.factory = self
        channel.site = self
        channel.requestFactory = self.requestFactory
        # The channel's timers (its idle timeout too) run on the site's reactor.
        channel.callLater = self.reactor.callLater  # type: ignore[method-assign,assignment]  # TimeoutMixin's hook
        channel.timeOut = self.timeOut  # type: ignore[assignment]  # a float timeout works as well
        self.channels.add(channel)
        return channel

    def close_connections(self) -> None:
        """At shutdown: close idle keep-alive connections; busy ones close after their answer."""
        for channel in list(self.channels):
            if channel._handlingRequest:
                channel.persistent = False
            else:  # idle: nothing in flight to lose; a TLS close could wait on the client
                channel.connection.abortConnection()

    def log(self, request: Any) -> None:
        # Access lines carry no body and no query string (which may hold ids).
        pass


class _CappedTLSFactory(TLSMemoryBIOFactory):
    """TLS in front of a :class:`LimitedSite` that refuses connections over the site's cap."""

    wrappedFactory: LimitedSite

    def buildProtocol(self, addr: Any) -> Any:
        if self.wrappedFactory.at_capacity():
            return None  # the port closes the socket at once; no TLS state is made
        return super().buildProtocol(addr)


def write_error(request: WebRequest, error: GatewayError, message_id: str | None = None) -> bytes:
    """Set status and headers for ``error`` and return the Error body."""
    request.setResponseCode(error.http_status)
    request.setHeader(b"Content-Type", XML_CONTENT_TYPE)
    return error_body(error.code, str(error), message_id)
