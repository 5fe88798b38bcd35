"""A hostile HTTP(S) server on loopback for the outbound-path tests (test code only).

:class:`Hostile` answers every request as its ``mode`` says: a redirect to
:class:`Target` (which counts the requests that reach it), a gzip bomb, or an
endless body. Servers bind port 0 and report the port they got.
"""

from __future__ import annotations

import zlib
from functools import cache
from typing import Any

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

#: What the bomb inflates to, and the size of each compressed chunk of zeros.
BOMB_INFLATED = 256 * 1024 * 1024
_CHUNK = 1024 * 1024
#: How much an endless body writes at most (far beyond any cap under test).
ENDLESS_BYTES = 64 * 1024 * 1024


@cache
def gzip_bomb() -> bytes:
    """A gzip stream of BOMB_INFLATED zero bytes (about 260 KB), built in chunks."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(_CHUNK)
    parts = [compressor.compress(zeros) for _ in range(BOMB_INFLATED // _CHUNK)]
    parts.append(compressor.flush())
    return b"".join(parts)


class Target(Resource):
    """Where a redirect points: counts every request that reaches it; answers 200 with XML."""

    isLeaf = True

    def __init__(self, body: bytes = b"<?xml version='1.0'?><nothing/>") -> None:
        super().__init__()
        self.hits = 0
        self.body = body

    def render(self, request: Request) -> bytes:
        self.hits += 1
        request.setHeader(b"Content-Type", b"application/xml")
        return self.body


class Hostile(Resource):
    """Answers every request by ``mode``: redirect-NNN | gzip-bomb | endless | declared-huge."""

    isLeaf = True

    def __init__(self, location: str, mode: str = "redirect-302") -> None:
        super().__init__()
        self.location = location
        self.mode = mode
        #: (method, path, Accept-Encoding) of every request received.
        self.requests: list[tuple[bytes, bytes, bytes | None]] = []
        #: Bytes written by the endless body, and whether the client cut the connection.
        self.written = 0
        self.cut = False

    def render(self, request: Request) -> Any:
        self.requests.append((request.method, request.path, request.getHeader(b"accept-encoding")))
        request.setHeader(b"Content-Type", b"application/xml")
        if self.mode.startswith("redirect-"):
            request.setResponseCode(int(self.mode.split("-")[1]))
            request.setHeader(b"Location", self.location.encode("ascii"))
            return b"<moved/>"
        if self.mode == "gzip-bomb":
            request.setHeader(b"Content-Encoding", b"gzip")
            return gzip_bomb()
        if self.mode == "declared-huge":
            request.setHeader(b"Content-Length", str(ENDLESS_BYTES).encode("ascii"))
        request.notifyFinish().addErrback(lambda _: setattr(self, "cut", True))
        self._write_more(request)
        return NOT_DONE_YET

    def _write_more(self, request: Request) -> None:
        if self.cut or request.finished:
            return
        if self.written >= ENDLESS_BYTES:
            request.finish()
            return
        request.write(bytes(65536))
        self.written += 65536
        reactor.callLater(0, self._write_more, request)


def listen_tls(resource: Resource, options: Any) -> Any:
    """An HTTPS listener on 127.0.0.1, port 0 (its port: ``.getHost().port``)."""
    return reactor.listenSSL(0, Site(resource), options, interface="127.0.0.1")


def listen_plain(resource: Resource) -> Any:
    """A plain HTTP listener on 127.0.0.1, port 0."""
    return reactor.listenTCP(0, Site(resource), interface="127.0.0.1")
