"""HTTP plumbing shared by the network adapters: agent construction with
TLS verification on by default, URL checks, and the node's one hardened
outbound request path (``gateway.transport.outbound_http``) with the
translation engines' error codes.

Rules enforced here so each adapter cannot forget them:

* TLS certificates are verified (the system trust store, or a pinned CA file
  for a self-hosted engine); plain ``http://`` is accepted only for loopback
  addresses unless the operator explicitly allows it.
* Redirects are never followed (free text must not be re-sent elsewhere):
  a 3xx answer is TRANSLATION_REDIRECTED.
* No content encoding is asked for or accepted (an encoded answer is
  TRANSLATION_CONTENT_ENCODED, never inflated); no cookies are kept.
* Response bodies are read up to a byte limit, then the connection is cut.
* Nothing here logs request or response bodies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.ssl import Certificate, optionsForClientTLS, trustRootFromCertificates
from twisted.python.failure import Failure
from twisted.web.client import BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.iweb import IAgent, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from gateway.core.errors import ConfigurationError
from gateway.transport import outbound_http
from gateway.transport.outbound_http import Refusals, make_agent

from .base import TranslationTimeout, TranslationUnavailable

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class ResponseTooLarge(TranslationUnavailable):
    """The machine-translation engine's answer exceeds the configured size limit."""

    code = "TRANSLATION_RESPONSE_TOO_LARGE"


class TranslationRedirected(TranslationUnavailable):
    """The machine-translation engine answered with a redirect; redirects are never followed."""

    code = "TRANSLATION_REDIRECTED"


class TranslationContentEncoded(TranslationUnavailable):
    """The machine-translation engine answered with a content encoding (e.g. gzip); only identity is accepted."""

    code = "TRANSLATION_CONTENT_ENCODED"


REFUSALS = Refusals(
    redirected=TranslationRedirected, encoded=TranslationContentEncoded, too_large=ResponseTooLarge
)
#: How the engine is named in error messages (never its URL).
_ENGINE = "the engine"


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
    """An Agent plus the connection pool it owns (closed by :meth:`close`)."""

    def __init__(self, agent: IAgent, pool: HTTPConnectionPool | None) -> None:
        self.agent = agent
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
    """The HTTP agent of an engine.

    With ``agent`` given (tests, or a node-wide agent) it is used as is.
    Otherwise a plain Agent with a persistent pool is built on ``reactor``;
    TLS is verified against the system trust store, or only against the CA
    certificates in ``tls_ca_file`` when set.
    """
    if agent is not None:
        return ManagedHTTPClient(agent, None)
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
    built, pool = make_agent(
        reactor, policy, max_per_host=4, idle_seconds=60, connect_timeout=connect_timeout
    )
    return ManagedHTTPClient(built, pool)


def send(
    agent: IAgent,
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[bytes, bytes] | None = None,
) -> Deferred[IResponse]:
    """One request on the hardened path: no redirects, no content encodings, our User-Agent."""
    return outbound_http.send(
        agent, method, url, REFUSALS, what=_ENGINE, body=body, headers=headers
    )


def read_body(response: IResponse, max_bytes: int) -> Deferred[bytes]:
    """Read a response body of at most ``max_bytes``; fail with ResponseTooLarge beyond.

    Cancelling the returned Deferred closes the connection.
    """
    return outbound_http.read_body(response, max_bytes, REFUSALS, what=_ENGINE)


def with_timeout(d: Deferred[Any], seconds: float, clock: IReactorTime, what: str) -> Deferred[Any]:
    """Cancel ``d`` after ``seconds`` on ``clock``; then fail with TranslationTimeout."""
    return outbound_http.with_timeout(
        d,
        seconds,
        clock,
        lambda: TranslationTimeout(f"{what} did not answer within {seconds:g} s"),
    )


def as_unavailable(failure: Failure, what: str) -> Failure:
    """Turn a network or protocol failure into TranslationUnavailable (no body text in it)."""
    if failure.check(TranslationUnavailable, CancelledError):
        return failure
    reason = type(failure.value).__name__
    return Failure(TranslationUnavailable(f"{what} could not be reached ({reason})"))
