"""HTTP plumbing shared by the network adapters: client construction with
TLS verification on by default, URL checks, bounded response reading and
timeouts on the injected clock.

Rules enforced here so each adapter cannot forget them:

* TLS certificates are verified (the system trust store, or a pinned CA file
  for a self-hosted engine); plain ``http://`` is accepted only for loopback
  addresses unless the operator explicitly allows it.
* Redirects are never followed (free text must not be re-sent elsewhere).
* Response bodies are read up to a byte limit, then the connection is cut.
* Nothing here logs request or response bodies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.ssl import Certificate, optionsForClientTLS, trustRootFromCertificates
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    PotentialDataLoss,
    ResponseDone,
)
from twisted.web.iweb import IAgent, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from gateway import __version__
from gateway.core.errors import ConfigurationError

from .base import TranslationTimeout, TranslationUnavailable

USER_AGENT = f"imi-gateway/{__version__}".encode("ascii")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class ResponseTooLarge(TranslationUnavailable):
    """The machine-translation engine's answer exceeds the configured size limit."""

    code = "TRANSLATION_RESPONSE_TOO_LARGE"


def is_loopback_host(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, setting: str, *, allow_insecure_http: bool = False) -> str:
    """Validate an engine or callback URL from the configuration; return it without a trailing slash.

    ``https://`` is required; ``http://`` only for loopback hosts or when
    ``allow_insecure_http`` is set (free text is personal data).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(f"{setting} must be an https:// URL, not {url!r}")
    if parts.username or parts.password:
        raise ConfigurationError(
            f"{setting} must not contain credentials; use the settings for them"
        )
    if parts.fragment:
        raise ConfigurationError(f"{setting} must not contain a #fragment")
    if parts.scheme == "http" and not (allow_insecure_http or is_loopback_host(parts.hostname)):
        raise ConfigurationError(
            f"{setting} uses plain http:// to a non-loopback host; free text is personal data, "
            "so use https:// (or set allow_insecure_http = true if the network is trusted)"
        )
    return url.rstrip("/")


def request_target(url: str) -> str:
    """The request target (path and query) an Agent sends for ``url``."""
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return target


@implementer(IPolicyForHTTPS)
class PinnedCAPolicy:
    """Verify servers against the CA certificates of one PEM file only."""

    def __init__(self, pem: bytes) -> None:
        certificates = [
            Certificate.loadPEM(b"-----BEGIN CERTIFICATE-----" + block)
            for block in pem.split(b"-----BEGIN CERTIFICATE-----")[1:]
        ]
        if not certificates:
            raise ConfigurationError("tls_ca_file holds no PEM certificate")
        self._trust = trustRootFromCertificates(certificates)

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return optionsForClientTLS(hostname.decode("idna"), trustRoot=self._trust)


class ManagedHTTPClient:
    """A treq client plus the connection pool it owns (closed by :meth:`close`)."""

    def __init__(self, client: HTTPClient, pool: HTTPConnectionPool | None) -> None:
        self.client = client
        self._pool = pool

    def close(self) -> Deferred[None]:
        if self._pool is None:
            return succeed(None)
        d: Deferred[None] = self._pool.closeCachedConnections()
        return d


def make_http_client(
    reactor: Any,
    *,
    agent: IAgent | None = None,
    tls_ca_file: str | None = None,
    connect_timeout: float = 10.0,
) -> ManagedHTTPClient:
    """A treq HTTP client for an engine.

    With ``agent`` given (tests, or a node-wide agent) it is used as is.
    Otherwise an Agent with a persistent pool is built on ``reactor``; TLS is
    verified against the system trust store, or only against the CA
    certificates in ``tls_ca_file`` when set.
    """
    if agent is not None:
        return ManagedHTTPClient(HTTPClient(agent), None)
    policy: IPolicyForHTTPS
    if tls_ca_file:
        try:
            pem = Path(tls_ca_file).read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read tls_ca_file {tls_ca_file!r}: {exc.strerror}"
            ) from None
        policy = PinnedCAPolicy(pem)
    else:
        policy = BrowserLikePolicyForHTTPS()
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 4
    pool.cachedConnectionTimeout = 60
    built = Agent(reactor, contextFactory=policy, pool=pool, connectTimeout=connect_timeout)
    return ManagedHTTPClient(HTTPClient(built), pool)


def send(
    http: HTTPClient,
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[bytes, bytes] | None = None,
) -> Deferred[IResponse]:
    """One request: no redirects, unbuffered body, our User-Agent."""
    all_headers: dict[bytes, list[bytes]] = {b"User-Agent": [USER_AGENT]}
    for name, value in (headers or {}).items():
        all_headers[name] = [value]
    d: Deferred[IResponse] = http.request(
        method,
        url,
        data=body,
        headers=all_headers,
        allow_redirects=False,
        unbuffered=True,
    )
    return d


class _LimitedBody(Protocol):
    """Collects a response body up to a limit; cut off when too large or cancelled."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.chunks: list[bytes] = []
        self.size = 0
        self.finished: Deferred[bytes] = Deferred(self._cancel)

    def _cancel(self, _: Deferred[bytes]) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        self.size += len(data)
        if self.size > self.max_bytes:
            if self.transport is not None:
                self.transport.loseConnection()
            self.finished.errback(
                ResponseTooLarge(f"the engine's answer exceeds the limit of {self.max_bytes} bytes")
            )
            return
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.finished.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self.chunks))
        else:
            self.finished.errback(reason)


def read_body(response: IResponse, max_bytes: int) -> Deferred[bytes]:
    """Read a response body of at most ``max_bytes``; fail with ResponseTooLarge beyond.

    Cancelling the returned Deferred closes the connection.
    """
    if response.length == 0:
        return succeed(b"")
    protocol = _LimitedBody(max_bytes)
    if isinstance(response.length, int) and response.length > max_bytes:
        protocol.size = max_bytes  # the first byte is then one too many
    response.deliverBody(protocol)
    return protocol.finished


def with_timeout(d: Deferred[Any], seconds: float, clock: IReactorTime, what: str) -> Deferred[Any]:
    """Cancel ``d`` after ``seconds`` on ``clock``; then fail with TranslationTimeout."""
    timed_out = False

    def expire() -> None:
        nonlocal timed_out
        timed_out = True
        d.cancel()

    call: IDelayedCall = clock.callLater(seconds, expire)

    def done(result: object) -> object:
        if call.active():
            call.cancel()
        if timed_out and isinstance(result, Failure):
            # Cancelling an Agent request fails it with ResponseNeverReceived or
            # CancelledError, depending on how far it got: all mean "timed out".
            return Failure(TranslationTimeout(f"{what} did not answer within {seconds:g} s"))
        return result

    return d.addBoth(done)


def as_unavailable(failure: Failure, what: str) -> Failure:
    """Turn a network or protocol failure into TranslationUnavailable (no body text in it)."""
    if failure.check(TranslationUnavailable, CancelledError):
        return failure
    reason = type(failure.value).__name__
    return Failure(TranslationUnavailable(f"{what} could not be reached ({reason})"))
