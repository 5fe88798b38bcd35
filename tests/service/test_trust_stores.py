"""A trust reload swaps the stores at once: a verifier on another thread never sees them half built.

The pipeline verifies on the CPU pool while a reload (SIGHUP, a peer's new
directory) rebuilds the stores; a reader must get either the old store or the
new one, never a missing peer (seen as ``KeyError: 'NO'`` in
tests/service/test_dead_letters.py under load).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cryptography import x509

from gateway.core.certs import TrustStore
from gateway.service.trust import NodeTrustStores
from gateway.testbed import setup_nodes


def test_a_reader_during_a_reload_sees_the_old_peer_stores(tmp_path: Path) -> None:
    setups = setup_nodes(tmp_path, {"NO": ["NO-HELSEDIR"], "PT": ["PT-OMD"]})
    probing: list[bool] = []
    seen: list[tuple[TrustStore, TrustStore]] = []

    def directory_certs(peer: str) -> Mapping[str, tuple[x509.Certificate, ...]]:
        if probing:  # the reload is under way: a verifier asks now
            seen.append((stores.peer_authorities("NO"), stores.envelopes("NO")))
        return {}

    stores = NodeTrustStores(setups["PT"].node_dir, directory_certs)
    before = (stores.peer_authorities("NO"), stores.envelopes("NO"))
    probing.append(True)
    stores.reload()
    assert seen == [before]
    assert stores.peer_authorities("NO") is not before[0]  # and afterwards the new ones
