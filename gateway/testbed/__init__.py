"""A test bed of real nodes on loopback, and simulated national systems.

Used by ``imi-gateway demo``, ``imi-gateway bench`` and the two-node tests,
so all three exercise exactly what an operator sets up by hand:
``init`` each node, ``keys issue-national`` for each authority, exchange
``keys export`` / ``keys import-peer`` bundles, then ``run``.

* :mod:`gateway.testbed.nodes`: the node directories (every listener on
  port 0), the ports each running node bound, and the peers' URLs;
* :mod:`gateway.testbed.national`: a simulated national IT system;
* :mod:`gateway.testbed.documents`: the running example's documents.
"""

from __future__ import annotations

from gateway.testbed.documents import (
    CATALOGUE_VERSION,
    DOCTOR_ANSWERS,
    DOCTOR_QUESTIONS,
    doctor_acceptance,
    doctor_answer,
    doctor_closure,
    doctor_request,
    owned_id,
)
from gateway.testbed.national import NationalSystem, NationalSystemError, Pulled
from gateway.testbed.nodes import (
    LOOPBACK,
    NationalCredentials,
    NodeNotRunning,
    NodeSetup,
    before_start,
    node_certificate,
    node_started,
    node_stopped,
    set_peer_url,
    setup_nodes,
    signal_reload,
    start_in_process,
)

__all__ = [
    "CATALOGUE_VERSION",
    "DOCTOR_ANSWERS",
    "DOCTOR_QUESTIONS",
    "LOOPBACK",
    "NationalCredentials",
    "NationalSystem",
    "NationalSystemError",
    "NodeNotRunning",
    "NodeSetup",
    "Pulled",
    "before_start",
    "doctor_acceptance",
    "doctor_answer",
    "doctor_closure",
    "doctor_request",
    "node_certificate",
    "node_started",
    "node_stopped",
    "owned_id",
    "set_peer_url",
    "setup_nodes",
    "signal_reload",
    "start_in_process",
]
