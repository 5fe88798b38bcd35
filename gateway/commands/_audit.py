"""The audit entries of the commands that change a node's configuration, trust or authorities.

Each such command calls :func:`record_change` once its change is written:
one entry (CONFIG_CHANGED, TRUST_CHANGED or AUTHORITIES_CHANGED) with actor
``operator``, what changed in the message field (an authority id, a peer
node id, a revoked fingerprint), and the keyed digest of the state after the
change (gateway.toml's bytes, the trust store's listing, the directory
state), so that whoever holds the audit key can tie the entry to the files.

The change is in files and the entry in the database, so they cannot share
one transaction: the entry is written right after the files (a crash in
between leaves a change without its entry), and a running node also records
each trust change it applies (``node/trust_reload.py``). See docs/audit.md.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway import keystore
from gateway.commands.queue import _database
from gateway.core.audit import OPERATOR_ACTOR, Event
from gateway.storage.audit import append_audit_txn
from gateway.storage.directory_files import DirectoryStore


def _state(node_dir: str, event: Event) -> bytes:
    """The bytes whose keyed digest an entry of ``event`` carries."""
    if event is Event.CONFIG_CHANGED:
        return keystore.node_paths(node_dir).config.read_bytes()
    if event is Event.TRUST_CHANGED:
        return keystore.trust_listing(keystore.load_trust(node_dir))
    state = DirectoryStore(node_dir).state_path
    return state.read_bytes() if state.exists() else b""


def record_change(node_dir: str, event: Event, subject: str = "") -> None:
    """Append ``event`` (a change made by an ``imi-gateway`` command) to the node's audit log."""
    key, _ = keystore.ensure_audit_key(node_dir)
    digest = key.digest(_state(node_dir, event))
    db, _node_id = _database(node_dir)
    try:
        db.run_txn_sync(
            append_audit_txn,
            at=datetime.now(UTC),
            event=event,
            actor=OPERATOR_ACTOR,
            message_id=subject,
            digest=digest,
        )
    finally:
        db.stop()
