"""The node's audit key (``keys/audit.hmac``): keys the document digests of its audit entries.

32 random bytes, 0600 in the 0700 ``keys/`` directory, like ``data.kek``;
never in the database, never logged. ``imi-gateway init`` creates it; a
node directory made before the audit log had one gets it at its first start
(:func:`ensure_audit_key`). Whoever holds the key can recompute a
document's digest (an auditor it is handed to); without it a digest tells
nothing about the document (docs/audit.md).
"""

from __future__ import annotations

from pathlib import Path

from gateway.core.audit import AUDIT_KEY_BYTES, AuditKey
from gateway.keystore.certs import certificate_fingerprint
from gateway.keystore.errors import KeyStoreError
from gateway.keystore.layout import (
    NODE_KEY_NAMES,
    _locked,
    _read_private,
    atomic_write,
    node_paths,
)
from gateway.keystore.load import NodeTrust

AUDIT_KEY_FILE = "audit.hmac"


def audit_key_path(node_dir: str | Path) -> Path:
    """Where the node's audit key lives: ``NODE_DIR/keys/audit.hmac``."""
    return node_paths(node_dir).keys_dir / AUDIT_KEY_FILE


def write_new_audit_key(node_dir: str | Path) -> None:
    """Write a fresh audit key (0600); the caller made sure there is none."""
    atomic_write(audit_key_path(node_dir), AuditKey.generate().secret, 0o600)


def load_audit_key(node_dir: str | Path) -> AuditKey:
    """The node's audit key; refused when missing, the wrong size, or readable by others."""
    path = audit_key_path(node_dir)
    data = _read_private(path, "the audit key")
    if len(data) != AUDIT_KEY_BYTES:
        raise KeyStoreError(f"{path}: must hold exactly {AUDIT_KEY_BYTES} bytes")
    return AuditKey(data)


def ensure_audit_key(node_dir: str | Path) -> tuple[AuditKey, bool]:
    """The node's audit key, created first if the node directory has none: (key, created).

    Under the node directory's lock, so two starting processes sharing the
    directory create one key between them.
    """
    path = audit_key_path(node_dir)
    created = False
    if not path.exists():
        with _locked(node_paths(node_dir)):
            if not path.exists():  # another process may have made it meanwhile
                write_new_audit_key(node_dir)
                created = True
    return load_audit_key(node_dir), created


__all__ = [
    "AUDIT_KEY_FILE",
    "audit_key_path",
    "ensure_audit_key",
    "load_audit_key",
    "trust_listing",
    "write_new_audit_key",
]


def trust_listing(trust: NodeTrust) -> bytes:
    """A canonical listing of what ``trust`` trusts: one line per pinned or revoked fingerprint.

    TRUST_CHANGED audit entries carry its keyed digest: whoever holds the
    audit key and the trust store can show which trust an entry recorded.
    """
    lines = [
        f"peer {peer_id} {role} {certificate_fingerprint(cert)}"
        for peer_id, peer in trust.peers.items()
        for role, cert in zip(NODE_KEY_NAMES, peer.all(), strict=True)
    ]
    lines += [
        f"national {authority_id} {certificate_fingerprint(cert)}"
        for authority_id, certs in trust.national.items()
        for cert in certs
    ]
    lines += [f"revoked {fp}" for fp in trust.revoked]
    return "".join(f"{line}\n" for line in sorted(lines)).encode("ascii")
