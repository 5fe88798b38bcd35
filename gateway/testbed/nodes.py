"""Node directories of a test bed on loopback, and the ports their nodes bound.

:func:`setup_nodes` makes the node directories exactly as operators do
(``init``, ``keys issue-national``, ``keys export`` / ``keys import-peer``),
with every listener on port 0: a node binds free ports when it starts and
reports them (no port is picked beforehand and released, which another
process could take in between).

A peer's URL is therefore known only once that peer runs. The bed keeps it
in each node's configuration (``[[peers]] url``, as an operator would):

* :func:`before_start` writes the URLs of the bed's running nodes into the
  configuration of a node about to start;
* :func:`node_started` records the ports a node bound, writes its peer URL
  into the other nodes' configurations and has the running ones reload it
  (in-process: ``NodeParts.reload_trust``; a node process: SIGHUP);
* :func:`node_stopped` forgets the ports of a stopped node.

:func:`start_in_process` does the three for a node built in this process.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from gateway import config as config_mod
from gateway.core.errors import GatewayError
from gateway.keystore import (
    InitOptions,
    export_node_bundle,
    import_peer,
    init_node_dir,
    issue_national_certificate,
    load_node_keys,
)
from gateway.keystore.layout import atomic_write
from gateway.node_ports import NodePorts

#: Every node of a test bed listens on this address.
LOOPBACK = "127.0.0.1"


class NodeNotRunning(GatewayError):
    """A bound port of a node was asked for while the node does not run."""

    code = "TESTBED_NODE_NOT_RUNNING"


@dataclass(frozen=True)
class NationalCredentials:
    authority_id: str
    key_path: Path
    certificate_path: Path


@dataclass(eq=False)
class NodeSetup:
    """One node directory of the bed; its ports while its node runs."""

    node_id: str
    node_dir: Path
    authorities: dict[str, NationalCredentials] = field(default_factory=dict)
    #: Every node of the bed by id, this one included.
    bed: dict[str, NodeSetup] = field(default_factory=dict, repr=False)
    #: The ports the running node bound (None while it does not run).
    ports: NodePorts | None = None
    #: Makes the running node re-read its peers' URLs (None while it does not run).
    reload: Callable[[], object] | None = field(default=None, repr=False)

    def _bound(self) -> NodePorts:
        if self.ports is None:
            raise NodeNotRunning(f"node {self.node_id} is not running: it has no ports")
        return self.ports

    @property
    def api_port(self) -> int:
        return self._bound().api

    @property
    def peer_port(self) -> int:
        return self._bound().peer

    @property
    def metrics_port(self) -> int:
        return self._bound().metrics

    @property
    def api_url(self) -> str:
        return f"https://{LOOPBACK}:{self.api_port}"

    @property
    def peer_url(self) -> str:
        return f"https://{LOOPBACK}:{self.peer_port}"

    def others(self) -> list[NodeSetup]:
        return [s for s in self.bed.values() if s is not self]


def _listen_on_loopback(node_dir: Path) -> None:
    config = node_dir / "gateway.toml"
    text = config.read_text()
    for section in ("[api]", "[peer]"):
        text = text.replace(f"{section}\n", f'{section}\nhost = "{LOOPBACK}"\n', 1)
    config.write_text(text)


def _merge_config(path: Path, extra: str) -> None:
    """Add ``extra`` TOML to the file: keys of a [section] the file has go under its header."""
    text = path.read_text()
    section: str | None = None
    appended: list[str] = []
    for line in extra.strip().splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            section = stripped
            if f"\n{section}\n" not in f"\n{text}":
                appended.append(line)
                section = None
            continue
        if stripped.startswith("[["):
            section = None
            appended.append(line)
            continue
        if section is not None:
            text = text.replace(f"{section}\n", f"{section}\n{line}\n", 1)
        else:
            appended.append(line)
    if appended:
        text += "\n" + "\n".join(appended) + "\n"
    path.write_text(text)


def setup_nodes(
    base_dir: Path,
    authorities: Mapping[str, Sequence[str]],
    *,
    extra_config: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> dict[str, NodeSetup]:
    """Create one node per country in ``authorities`` under ``base_dir``, all peers of each other.

    ``authorities`` maps a country code to the authority ids registered at
    that node (each gets a national-system certificate). ``extra_config``
    maps a country to TOML text appended to its configuration. Every
    listener is on port 0; a peer's URL names port 0 (nothing answers there)
    until that peer runs (see :func:`node_started`).
    """
    nodes: dict[str, NodeSetup] = {}
    for country, ids in authorities.items():
        node_dir = base_dir / f"node-{country.lower()}"
        init_node_dir(
            node_dir,
            InitOptions(
                country=country,
                api_port=0,
                peer_port=0,
                metrics_port=0,
                hosts=(LOOPBACK,),
                public_url=f"https://{LOOPBACK}:0",
            ),
            now=now,
        )
        _listen_on_loopback(node_dir)
        setup = NodeSetup(country, node_dir, bed=nodes)
        for authority in ids:
            issued = issue_national_certificate(
                node_dir, authority, base_dir / f"national-{authority.lower()}", now=now
            )
            setup.authorities[authority] = NationalCredentials(
                authority, issued.key_path, issued.certificate_path
            )
        if extra_config and country in extra_config:
            _merge_config(node_dir / "gateway.toml", extra_config[country])
        nodes[country] = setup
    for country, setup in nodes.items():
        bundle = export_node_bundle(setup.node_dir)
        for other_country, other in nodes.items():
            if other_country != country:
                import_peer(other.node_dir, bundle)
    return nodes


def set_peer_url(node_dir: Path, peer_id: str, url: str) -> None:
    """Set the ``[[peers]] url`` of ``peer_id`` in the configuration of ``node_dir``."""
    path = node_dir / config_mod.CONFIG_FILE
    text = path.read_text(encoding="utf-8")
    new_text = config_mod.with_peer(text, node_dir, peer_id, url)
    if new_text != text:
        atomic_write(path, new_text.encode("utf-8"), path.stat().st_mode & 0o777)


def before_start(setup: NodeSetup) -> None:
    """Write the peer URLs of the bed's running nodes into ``setup``'s configuration."""
    for other in setup.others():
        if other.ports is not None:
            set_peer_url(setup.node_dir, other.node_id, other.peer_url)


def node_started(setup: NodeSetup, ports: NodePorts, reload: Callable[[], object]) -> None:
    """``setup``'s node runs on ``ports``: the bed's other nodes learn its peer URL.

    ``reload`` makes that node re-read its peers' URLs; it is called for this
    node when a peer starts later.
    """
    setup.ports, setup.reload = ports, reload
    for other in setup.others():
        set_peer_url(other.node_dir, setup.node_id, setup.peer_url)
        if other.reload is not None:
            other.reload()


def node_stopped(setup: NodeSetup) -> None:
    setup.ports, setup.reload = None, None


def signal_reload(pid: int) -> Callable[[], object]:
    """The reload of a node process: SIGHUP (``imi-gateway run`` re-reads peer URLs on it)."""
    return lambda: os.kill(pid, signal.SIGHUP)


def start_in_process(
    setup: NodeSetup, reactor: Any, *, catalogues: Any = None, **build: Any
) -> tuple[Any, Any]:
    """Build and start ``setup``'s node in this process; (service, NodeParts), the bed told."""
    from gateway.node import build_node

    before_start(setup)
    service, parts = build_node(setup.node_dir, reactor, catalogues=catalogues, **build)
    service.startService()
    ports = NodePorts(parts.api.port, parts.peer.port, parts.health.port, os.getpid())
    node_started(setup, ports, parts.reload_trust)
    return service, parts


def node_certificate(node_dir: Path) -> x509.Certificate:
    return load_node_keys(node_dir).signing.certificate
