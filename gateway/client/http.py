"""One persistent HTTPS connection to the node, with the national system's client certificate.

Standard library only: ``http.client`` over an ``ssl`` context that trusts
exactly the node's CA (``node-ca.pem``; never the system's CA bundle),
checks the host name, and presents the national system's certificate.
"""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gateway.client.errors import NodeUnreachable


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def tls_context(
    cert: str | Path, key: str | Path, node_ca: str | Path, password: bytes | None = None
) -> ssl.SSLContext:
    """TLS 1.2+ trusting only ``node_ca``, with the client certificate ``cert``/``key``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and host name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=str(node_ca))
    context.load_cert_chain(str(cert), str(key), password=password)
    return context


class Connection:
    """Requests to one node over one kept-alive connection, re-opened when the node closed it."""

    def __init__(self, base_url: str, context: ssl.SSLContext, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"the node's URL must be https://HOST[:PORT], not {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 443
        self.prefix = parts.path.rstrip("/")
        self._context = context
        self._timeout = timeout
        self._connection: http.client.HTTPSConnection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(
        self, method: str, path: str, body: bytes | None = None, *, timeout: float | None = None
    ) -> Answer:
        """One request; sent again once on a fresh connection if the kept-alive one was closed.

        Every request of the API may be repeated safely (docs/api.md §6).
        """
        headers = {"Accept-Encoding": "identity"}
        if body is not None:
            headers["Content-Type"] = "application/xml"
        for attempt in (1, 2):
            fresh = self._connection is None
            if self._connection is None:
                self._connection = http.client.HTTPSConnection(
                    self.host, self.port, context=self._context, timeout=self._timeout
                )
            connection = self._connection
            connection.timeout = timeout or self._timeout
            if connection.sock is not None:
                connection.sock.settimeout(connection.timeout)
            try:
                connection.request(method, self.prefix + path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.close()
                if fresh or attempt == 2:
                    raise NodeUnreachable(f"the node closed the connection: {exc}") from None
                continue
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise NodeUnreachable(f"cannot reach the node: {exc}") from None
            if response.will_close:
                self.close()
            return Answer(response.status, response.getheader("Content-Type", ""), data)
        raise AssertionError("unreachable")  # pragma: no cover
