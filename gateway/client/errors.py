"""What the national-system client raises (gateway.client); a node never answers these."""

from __future__ import annotations

from gateway.core.errors import GatewayError, InvalidSignature, Unavailable


class NodeRefused(GatewayError):
    """The node answered a client's request with an Error document (or a bare non-200 status).

    ``status`` is the HTTP status, ``remote_code`` the node's error code
    (docs/errors.md; ``HTTP_<status>`` when the answer held no Error
    document) and ``remote_message`` its message.
    """

    code = "NODE_REFUSED"
    http_status = 502

    def __init__(self, status: int, remote_code: str, remote_message: str) -> None:
        super().__init__(f"HTTP {status} {remote_code}: {remote_message}")
        self.status = status
        self.remote_code = remote_code
        self.remote_message = remote_message


class NodeUnreachable(Unavailable):
    """The client could not reach the node, or the connection failed (TLS, network, timeout)."""

    code = "NODE_UNREACHABLE"


class SignerNotNode(InvalidSignature):
    """A receipt or delivery is not signed by the client's node (another certificate of its CA)."""

    code = "SIGNER_NOT_NODE"
