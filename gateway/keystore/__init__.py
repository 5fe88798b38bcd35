"""The node directory on disk: keys, certificates, trust store, and their rules.

Layout (keys/README.md explains it to operators)::

    NODE_DIR/                      0700
      gateway.toml                 configuration (gateway.config), 0600
      keys/                        0700, private keys only
        ca.key signing.key tls.key   PEM PKCS#8, 0600
        data.kek                   32 random bytes: key-encryption key for the
                                   per-exchange data keys (docs/storage.md), 0600
        audit.hmac                 32 random bytes: the audit key, keys the document
                                   digests of audit entries (docs/audit.md), 0600
      certs/ca.pem signing.pem tls.pem
      certs/previous/              replaced certificates during a rotation's overlap
      trust/peers/<NODE_ID>/{ca,signing,tls}.pem   pinned certificates of a peer
      trust/peers/<NODE_ID>/previous/  the peer's replaced ones, during its overlap
      national/<AUTHORITY_ID>.pem  certificate(s) bound to a national authority
                                   (several during a rotation)
      national/revoked/<FP>.pem    certificates unbound by ``keys revoke``
      revoked.txt                  SHA-256 fingerprints revoked or unbound
      gateway.sqlite3              the embedded database (created by storage)

Rules enforced here:

* private keys are written 0600 in a 0700 directory, and refused on load when
  the file or its directory is readable by group or others, or owned by
  another user (like ssh does): :class:`KeyPermissionsTooOpen`;
* every write is atomic (temporary file, fsync, rename, fsync of the
  directory); mutations of the trust store and configuration take an
  exclusive lock on ``NODE_DIR/.lock`` so two commands cannot interleave;
* private keys are loaded once per process (:func:`load_node_keys` caches
  them: parsing a PEM key costs ~50 ms); the trust store is cheap to read and
  is read afresh by :func:`load_trust`, so a running node can reload it.

Fingerprints are the lower-case hex SHA-256 of a certificate's DER encoding
(the same definition as ``gateway.core.certs.fingerprint``). Nothing here logs
or prints key material.

Modules (this package re-exports their public names; import from
``gateway.keystore``):

* :mod:`~gateway.keystore.errors`: the key store's errors and their codes;
* :mod:`~gateway.keystore.layout`: :class:`NodePaths` and the file rules
  (atomic writes, the lock, private-file checks);
* :mod:`~gateway.keystore.certs`: fingerprints, PEM helpers, the ``keys
  show`` listing (:func:`certificate_info`);
* :mod:`~gateway.keystore.load`: :func:`load_node_keys` (cached),
  :func:`load_data_kek`, :func:`load_trust`, :func:`read_revocations`;
* operations, one module per command: :mod:`~gateway.keystore.create`
  (``init``), :mod:`~gateway.keystore.national` (``keys issue-national``),
  :mod:`~gateway.keystore.peers` (``keys export``, ``keys import-peer``),
  :mod:`~gateway.keystore.revocation` (``keys revoke``),
  :mod:`~gateway.keystore.rotation` (``keys rotate``, ``keys retire-old``;
  replaced certificates kept through the overlap by
  :mod:`~gateway.keystore.previous`). Their edits of
  gateway.toml are text edits made by :mod:`gateway.config` (``with_peer``,
  ``with_authority``); this package writes the file.
"""

from __future__ import annotations

# ``serialization`` and ``InvalidInput`` stay reachable here: callers and tests
# use ``keystore.serialization`` and ``keystore.InvalidInput``.
from cryptography.hazmat.primitives import serialization

from gateway.core.errors import InvalidInput
from gateway.keystore.audit_key import (
    AUDIT_KEY_FILE,
    audit_key_path,
    ensure_audit_key,
    load_audit_key,
    trust_listing,
)
from gateway.keystore.certs import (
    CertificateInfo,
    PrivateKey,
    certificate_fingerprint,
    certificate_info,
    identity_uris,
    normalize_fingerprint,
)
from gateway.keystore.create import InitOptions, init_node_dir
from gateway.keystore.errors import (
    AuthorityIdInvalid,
    KeyFileMissing,
    KeyPermissionsTooOpen,
    KeyStoreError,
    NodeDirExists,
    NodeIdInvalid,
    OutputExists,
    PeerAlreadyKnown,
    PeerBundleInvalid,
    RevocationTargetUnknown,
    RotationInvalid,
)
from gateway.keystore.layout import (
    CERTS_DIR,
    DATA_KEK_BYTES,
    DATA_KEK_FILE,
    KEYS_DIR,
    LOCK_FILE,
    NATIONAL_DIR,
    NODE_KEY_NAMES,
    PEERS_DIR,
    REVOKED_FILE,
    REVOKED_HEADER,
    NodePaths,
    atomic_write,
    node_paths,
)
from gateway.keystore.load import (
    KeyPair,
    NodeKeys,
    NodeTrust,
    PeerCertificates,
    clear_key_cache,
    load_data_kek,
    load_node_keys,
    load_trust,
    read_revocations,
    reload_node_keys,
)
from gateway.keystore.national import NationalIssued, check_authority_id, issue_national_certificate
from gateway.keystore.peers import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    ImportedPeer,
    export_node_bundle,
    import_peer,
    parse_node_bundle,
)
from gateway.keystore.revocation import Revocation, revoke
from gateway.keystore.rotation import (
    DEFAULT_OVERLAP_DAYS,
    Rotation,
    own_overlap_until,
    retire_old,
    rotate_node_keys,
)

__all__ = [
    "AUDIT_KEY_FILE",
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "CERTS_DIR",
    "DATA_KEK_BYTES",
    "DATA_KEK_FILE",
    "DEFAULT_OVERLAP_DAYS",
    "KEYS_DIR",
    "LOCK_FILE",
    "NATIONAL_DIR",
    "NODE_KEY_NAMES",
    "PEERS_DIR",
    "REVOKED_FILE",
    "REVOKED_HEADER",
    "AuthorityIdInvalid",
    "CertificateInfo",
    "ImportedPeer",
    "InitOptions",
    "InvalidInput",
    "KeyFileMissing",
    "KeyPair",
    "KeyPermissionsTooOpen",
    "KeyStoreError",
    "NationalIssued",
    "NodeDirExists",
    "NodeIdInvalid",
    "NodeKeys",
    "NodePaths",
    "NodeTrust",
    "OutputExists",
    "PeerAlreadyKnown",
    "PeerBundleInvalid",
    "PeerCertificates",
    "PrivateKey",
    "Revocation",
    "RevocationTargetUnknown",
    "Rotation",
    "RotationInvalid",
    "atomic_write",
    "audit_key_path",
    "certificate_fingerprint",
    "certificate_info",
    "check_authority_id",
    "clear_key_cache",
    "ensure_audit_key",
    "export_node_bundle",
    "identity_uris",
    "import_peer",
    "init_node_dir",
    "issue_national_certificate",
    "load_audit_key",
    "load_data_kek",
    "load_node_keys",
    "load_trust",
    "node_paths",
    "normalize_fingerprint",
    "own_overlap_until",
    "parse_node_bundle",
    "read_revocations",
    "reload_node_keys",
    "retire_old",
    "revoke",
    "rotate_node_keys",
    "serialization",
    "trust_listing",
]
