"""A small synchronous client for national systems: what an authority's IT system does.

It signs documents with the national system's key and certificate (the ones
``imi-gateway keys issue-national`` handed over), submits them over HTTPS
with the same certificate as TLS client certificate, verifies the node's
signed receipts and deliveries against the handed-over ``node-ca.pem``,
pulls deliveries with a cursor and acknowledges them, verifies the sender's
signature of a delivered document, and reads tracking records. See
docs/client.md.

It uses only the standard library (``http.client`` and ``ssl``) and the
gateway's core (the same signer and verifier the nodes use); no Twisted, no
database. One :class:`NodeClient` keeps one persistent connection; use it
from one thread.
"""

from __future__ import annotations

from gateway.client.documents import CreatedMissing, with_created
from gateway.client.errors import NodeRefused, NodeUnreachable, SignerNotNode
from gateway.client.node import NodeClient
from gateway.client.verifying import (
    NodeVerifier,
    Original,
    Pulled,
    PulledItem,
    Tracking,
    TrackingStage,
    read_tracking,
    verify_original,
)
from gateway.core.envelopes import ReceiptMismatch

__all__ = [
    "CreatedMissing",
    "NodeClient",
    "NodeRefused",
    "NodeUnreachable",
    "NodeVerifier",
    "Original",
    "Pulled",
    "PulledItem",
    "ReceiptMismatch",
    "SignerNotNode",
    "Tracking",
    "TrackingStage",
    "read_tracking",
    "verify_original",
    "with_created",
]
