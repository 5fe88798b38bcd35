"""What the console's pages use of the node: handed in once by the composition root.

The console calls the same stores and services as the CLI and the API
(``storage.outbox``, ``storage.exchanges``, ``storage.audit``, the
directory store, the metrics registry): never a second implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from lxml import etree
from twisted.internet.defer import Deferred

from gateway.config.model import NodeConfig
from gateway.console.signing import ConsoleSigners
from gateway.core.audit import AuditKey
from gateway.core.catalogue import CatalogueRegistry
from gateway.service.coordinators import CoordinatorDesk
from gateway.service.kpi import KpiQueries
from gateway.service.metrics import NodeMetrics
from gateway.service.trust import NodeTrustStores
from gateway.storage.db import Database
from gateway.storage.directory_files import DirectoryStore


@dataclass
class ConsoleDeps:
    node_id: str
    node_dir: Path
    config: NodeConfig
    db: Database
    #: The node's clock: ``now()`` is the wall clock (UTC).
    now: Callable[[], datetime]
    #: Runs blocking work (password hashing, rendering, files) on the CPU pool.
    run: Callable[..., Deferred[Any]]
    metrics: NodeMetrics
    sign: Callable[[etree._Element], bytes]
    audit_key: AuditKey
    directory: DirectoryStore
    trust: NodeTrustStores
    catalogues: CatalogueRegistry
    #: The node's own certificates (CA, signing, TLS), for the expiry warnings.
    node_certificates: Sequence[tuple[str, x509.Certificate]]
    #: Re-read trust and apply it (after a directory change that binds certificates).
    reload_trust: Callable[[], object]
    #: Wake the outbound queue of a peer (after a retry).
    wake_peer: Callable[[str], None]
    #: When the node started (for rates since the start).
    started_at: datetime
    #: The coordinators' desk (the service the API and the CLI use); None: no coordinator pages.
    coordinators: CoordinatorDesk | None = None
    #: The console keys of coordinator users (gateway.console.signing).
    signers: ConsoleSigners | None = None
    #: The performance figures (the service behind ``imi-gateway kpi`` and the API).
    kpi: KpiQueries | None = None

    def __post_init__(self) -> None:
        if self.signers is None:
            self.signers = ConsoleSigners(self.node_dir)


__all__ = ["ConsoleDeps"]
