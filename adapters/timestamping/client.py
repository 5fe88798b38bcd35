"""The TSA client: posts a time-stamp request over the node's hardened outbound HTTP path.

No redirects, no content encodings, the answer capped while it streams
(:mod:`gateway.transport.outbound_http`), a timeout on the injected clock.
Every failure is :class:`TimestampUnavailable` or another
:class:`~gateway.core.errors.GatewayError`: the caller keeps the checkpoint
untimestamped and tries again later. Nothing here logs a request or an answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.iweb import IPolicyForHTTPS, IResponse

from gateway.adapters.translation._http import PinnedCAPolicy, is_loopback_host
from gateway.core.errors import ConfigurationError, GatewayError, Unavailable
from gateway.transport import outbound_http
from gateway.transport.outbound_http import Refusals

from . import rfc3161

QUERY_TYPE = b"application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
#: A token holds the TSA's certificate (and maybe its chain): a few KiB.
MAX_RESPONSE_BYTES = 256 * 1024


class TimestampUnavailable(Unavailable):
    """The time-stamping authority could not be reached or answered badly; the checkpoint is retried later."""

    code = "TIMESTAMP_UNAVAILABLE"


REFUSALS = Refusals(
    redirected=TimestampUnavailable, encoded=TimestampUnavailable, too_large=TimestampUnavailable
)
_TSA = "the time-stamping authority"


def _load_pem(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {setting}: {exc.strerror}") from None


def check_tsa_url(url: str) -> str:
    """``https://``, or ``http://`` to a loopback host only (a local TSA, or a test's)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError("tsa_url must be an https:// URL")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigurationError("tsa_url may use http:// only for a loopback host")
    return url


class TSAClient:
    """Time-stamps SHA-256 imprints at one RFC 3161 authority."""

    def __init__(
        self,
        reactor: Any,
        url: str,
        *,
        signer_ca_file: str | None = None,
        tls_ca_file: str | None = None,
        timeout_seconds: float = 30.0,
    ) -> None:
        self._reactor = reactor
        self._url = check_tsa_url(url)
        self.pinned: x509.Certificate | None = None
        if signer_ca_file:
            self.pinned = x509.load_pem_x509_certificate(_load_pem(signer_ca_file, "tsa_ca_file"))
        policy: IPolicyForHTTPS = (
            PinnedCAPolicy(_load_pem(tls_ca_file, "tsa_tls_ca_file"))
            if tls_ca_file
            else BrowserLikePolicyForHTTPS()
        )
        self._agent, self._pool = outbound_http.make_agent(
            reactor, policy, max_per_host=1, idle_seconds=60, connect_timeout=timeout_seconds
        )
        self._timeout = timeout_seconds

    def timestamp(self, imprint: bytes) -> Deferred[bytes]:
        """The verified DER token over ``imprint``; fails with a GatewayError otherwise."""
        nonce = rfc3161.new_nonce()
        body = rfc3161.request(imprint, nonce)

        def answer(response: IResponse) -> Deferred[bytes]:
            if response.code != 200:
                outbound_http.discard(response)
                raise TimestampUnavailable(f"{_TSA} answered HTTP {response.code}")
            kind = response.headers.getRawHeaders(b"content-type", [b""])[0]
            if kind.split(b";")[0].strip().decode("latin-1").lower() != REPLY_TYPE:
                outbound_http.discard(response)
                raise TimestampUnavailable(f"{_TSA} did not answer a time-stamp reply")
            return outbound_http.read_body(response, MAX_RESPONSE_BYTES, REFUSALS, what=_TSA)

        def token(data: bytes) -> bytes:
            token = rfc3161.token_of_response(data)
            rfc3161.verify_token(token, imprint, pinned=self.pinned, nonce=nonce)
            return token

        sent = outbound_http.send(
            self._agent,
            "POST",
            self._url,
            REFUSALS,
            what=_TSA,
            body=body,
            headers={b"Content-Type": QUERY_TYPE},
        )
        d = outbound_http.with_timeout(
            sent.addCallback(answer),
            self._timeout,
            self._reactor,
            lambda: TimestampUnavailable(f"{_TSA} did not answer within {self._timeout:g} s"),
        )
        return d.addCallback(token).addErrback(_unavailable)

    def close(self) -> Deferred[None]:
        closed: Deferred[None] = self._pool.closeCachedConnections()  # type: ignore[no-untyped-call]  # untyped in Twisted
        return closed


def _unavailable(failure: Failure) -> Failure:
    if isinstance(failure.value, GatewayError):
        return failure
    reason = type(failure.value).__name__
    return Failure(TimestampUnavailable(f"{_TSA} could not be reached ({reason})"))  # type: ignore[no-untyped-call]  # Failure() is untyped
