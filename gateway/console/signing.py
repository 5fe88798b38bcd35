"""How the console signs a coordinator's documents: a console key per coordinator user.

Every coordinator action is a document signed by the coordinator
(docs/coordinators.md). A coordinator's own key, issued by ``imi-gateway
coordinators add``, is handed to the coordinator and never kept by the node.
For the console the operator issues, per console user, a second coordinator
certificate whose key the node keeps (``imi-gateway users add ... --role
coordinator --coordinator ID --console-key``):

* ``NODE_DIR/console-keys/<user>/<ID>.key`` (0600, directory 0700) and
  ``<ID>.pem``: a certificate of the node CA, marked as the coordinator's
  and bound to its id like the coordinator's own (``national/<ID>.pem``),
  so the peer node verifies it the same way;
* the console signs only after that user logged in, with the CSRF-checked
  form of an action, and records a CONSOLE_CHANGE entry naming the user and
  the document id next to the pipeline's SUBMITTED entry;
* its fingerprint is its own: ``imi-gateway keys revoke NODE_DIR SHA256``
  revokes it alone; ``coordinators remove`` revokes all of the coordinator's.

A coordinator without a console key uses the other way: the console prepares
the unsigned document, the coordinator signs it with its own key
(``imi-gateway sign``) and uploads the signed file, which the console hands
to the same desk. The trade-off is in docs/console.md.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway import keystore
from gateway.core import certs
from gateway.core.signing import Signer

__all__ = [
    "CONSOLE_KEYS_DIR",
    "ConsoleKey",
    "ConsoleSigners",
    "console_key_dir",
    "issue_console_key",
]

#: Where the console keys live in the node directory.
CONSOLE_KEYS_DIR = "console-keys"


def console_key_dir(node_dir: str | Path, username: str) -> Path:
    return Path(node_dir).absolute() / CONSOLE_KEYS_DIR / username


@dataclass(frozen=True)
class ConsoleKey:
    coordinator_id: str
    fingerprint: str
    certificate_path: Path


def issue_console_key(node_dir: str | Path, username: str, coordinator_id: str) -> ConsoleKey:
    """Issue and bind the console key of ``username`` acting for coordinator ``coordinator_id``."""
    parent = Path(node_dir).absolute() / CONSOLE_KEYS_DIR
    parent.mkdir(mode=0o700, exist_ok=True)
    issued = keystore.issue_national_certificate(
        node_dir, coordinator_id, console_key_dir(node_dir, username), coordinator=True
    )
    return ConsoleKey(coordinator_id, issued.fingerprint, issued.certificate_path)


class ConsoleSigners:
    """The console keys of the node's coordinator users, loaded once each (call off the reactor)."""

    def __init__(self, node_dir: str | Path) -> None:
        self._node_dir = Path(node_dir)
        self._loaded: dict[tuple[str, str], tuple[float, Signer]] = {}
        self._lock = threading.Lock()

    def _paths(self, username: str, coordinator_id: str) -> tuple[Path, Path]:
        folder = console_key_dir(self._node_dir, username)
        return folder / f"{coordinator_id}.key", folder / f"{coordinator_id}.pem"

    def has_key(self, username: str, coordinator_id: str) -> bool:
        key, cert = self._paths(username, coordinator_id)
        return key.exists() and cert.exists()

    def signer(self, username: str, coordinator_id: str, now: datetime) -> Signer | None:
        """The signer of ``username``'s console key for ``coordinator_id`` (None: it has none)."""
        key_path, cert_path = self._paths(username, coordinator_id)
        try:
            changed = cert_path.stat().st_mtime
        except FileNotFoundError:
            return None
        with self._lock:
            cached = self._loaded.get((username, coordinator_id))
            if cached is None or cached[0] != changed:
                certificate = certs.load_pem_certificate(cert_path.read_bytes())
                key = certs.load_pem_private_key(key_path.read_bytes(), None)
                cached = (changed, Signer(key, certificate))
                self._loaded[(username, coordinator_id)] = cached
        certs.check_validity(cached[1].certificate, now, "the console key's certificate")
        return cached[1]
