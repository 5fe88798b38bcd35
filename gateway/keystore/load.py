"""Loading the key store: the node's own keys (once per process), the data KEK, the trust store.

:func:`load_node_keys` parses and checks the private keys once per process
and caches them (parsing a PEM key costs ~50 ms); :func:`clear_key_cache`
forgets them after a rotation. :func:`load_trust` reads the pinned peer
certificates, the certificates bound to national authorities and the
revocation list afresh on every call, so a running node can reload them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.core import pki
from gateway.core.ns import AUTHORITY_URI_PREFIX, NODE_URI_PREFIX, is_authority_id, is_node_id
from gateway.keystore.certs import (
    PrivateKey,
    _is_ca,
    _issued_by,
    _load_cert,
    _load_certs,
    _same_public_key,
    certificate_fingerprint,
    identity_uris,
    normalize_fingerprint,
)
from gateway.keystore.errors import KeyStoreError
from gateway.keystore.layout import (
    DATA_KEK_BYTES,
    NODE_KEY_NAMES,
    NodePaths,
    _read_private,
    _require_node_dir,
    node_paths,
)
from gateway.keystore.previous import read_previous


@dataclass(frozen=True)
class KeyPair:
    """A private key, its certificate, and the files they were loaded from."""

    key: PrivateKey
    certificate: x509.Certificate
    key_path: Path
    certificate_path: Path

    @property
    def issued(self) -> pki.Issued:
        """The pair as ``gateway.core.pki.Issued`` (e.g. the CA for issuing)."""
        return pki.Issued(self.key, self.certificate)

    @property
    def fingerprint(self) -> str:
        return certificate_fingerprint(self.certificate)


@dataclass(frozen=True)
class NodeKeys:
    """The node's own keys: CA, document signing and TLS. Loaded once per process."""

    node_id: str
    node_dir: Path
    ca: KeyPair
    signing: KeyPair
    tls: KeyPair


_key_cache: dict[Path, NodeKeys] = {}
_key_cache_lock = threading.Lock()


def load_node_keys(node_dir: str | Path) -> NodeKeys:
    """The node's keys and certificates, loaded and checked once per process.

    Later calls for the same directory return the very same object. Checks:
    file permissions (see the module docstring), each key matches its
    certificate, the CA is a CA and issued the signing and TLS certificates,
    and both carry the same node identity URI. Raises :class:`KeyStoreError`
    subclasses (exit status 3) otherwise.
    """
    root = Path(node_dir).resolve()
    with _key_cache_lock:
        cached = _key_cache.get(root)
        if cached is None:
            cached = _key_cache[root] = _load_node_keys(node_paths(root))
        return cached


def reload_node_keys(node_dir: str | Path) -> NodeKeys:
    """Read the node's keys from disk again (after ``keys rotate``) and cache them."""
    root = Path(node_dir).resolve()
    fresh = _load_node_keys(node_paths(root))
    with _key_cache_lock:
        _key_cache[root] = fresh
    return fresh


def clear_key_cache() -> None:
    """Forget every cached :class:`NodeKeys` (after a key rotation, or in tests)."""
    with _key_cache_lock:
        _key_cache.clear()


def _load_pair(paths: NodePaths, name: str) -> KeyPair:
    key_path, cert_path = paths.key(name), paths.cert(name)
    data = _read_private(key_path, f"the node {name} private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyStoreError(
            f"{key_path}: not an unencrypted PEM private key (encrypted keys are not supported)"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeyStoreError(f"{key_path}: only ECDSA and RSA keys are supported")
    cert = _load_cert(cert_path, f"the node {name} certificate")
    if not _same_public_key(key, cert):
        raise KeyStoreError(f"{key_path} does not match the certificate {cert_path}")
    return KeyPair(key, cert, key_path, cert_path)


def _load_node_keys(paths: NodePaths) -> NodeKeys:
    _require_node_dir(paths)
    ca, signing, tls = (_load_pair(paths, name) for name in NODE_KEY_NAMES)
    if not _is_ca(ca.certificate):
        raise KeyStoreError(f"{ca.certificate_path}: not a CA certificate")
    node_ids: set[str] = set()
    for pair in (signing, tls):
        if not _issued_by(pair.certificate, ca.certificate):
            raise KeyStoreError(
                f"{pair.certificate_path} was not issued by the node CA {ca.certificate_path}"
            )
        uris = [u for u in identity_uris(pair.certificate) if u.startswith(NODE_URI_PREFIX)]
        if len(uris) != 1:
            raise KeyStoreError(f"{pair.certificate_path}: no single node identity URI")
        node_ids.add(uris[0][len(NODE_URI_PREFIX) :])
    if len(node_ids) != 1:
        raise KeyStoreError("the node signing and TLS certificates name different nodes")
    (node_id,) = node_ids
    if not is_node_id(node_id):
        raise KeyStoreError(f"the node certificates name {node_id!r}, not a country code")
    return NodeKeys(node_id, paths.root, ca, signing, tls)


def load_data_kek(node_dir: str | Path) -> bytes:
    """The node's data key-encryption key (32 bytes, ``keys/data.kek``)."""
    path = node_paths(node_dir).data_kek
    data = _read_private(path, "the data key-encryption key")
    if len(data) != DATA_KEK_BYTES:
        raise KeyStoreError(f"{path}: must hold exactly {DATA_KEK_BYTES} bytes")
    return data


@dataclass(frozen=True)
class PeerCertificates:
    """The pinned certificates of a peer node.

    ``signing`` and ``tls`` are the peer's current certificates. During a key
    rotation's overlap (``keys import-peer`` of a rotated peer's bundle) the
    ones they replaced are kept in ``previous_signing`` / ``previous_tls``
    until ``overlap_until``: the pin sets ``signing_set`` and ``tls_set``
    accept old and new alike.
    """

    node_id: str
    ca: x509.Certificate
    signing: x509.Certificate
    tls: x509.Certificate
    previous_signing: tuple[x509.Certificate, ...] = ()
    previous_tls: tuple[x509.Certificate, ...] = ()
    overlap_until: datetime | None = None

    def all(self) -> tuple[x509.Certificate, ...]:
        """The current CA, signing and TLS certificates (in ``NODE_KEY_NAMES`` order)."""
        return (self.ca, self.signing, self.tls)

    @property
    def signing_set(self) -> tuple[x509.Certificate, ...]:
        """Every signing certificate accepted from this peer (older ones first)."""
        return (*self.previous_signing, self.signing)

    @property
    def tls_set(self) -> tuple[x509.Certificate, ...]:
        """Every TLS certificate accepted from this peer (older ones first)."""
        return (*self.previous_tls, self.tls)


@dataclass(frozen=True)
class NodeTrust:
    """What this node trusts: peers' certificates, national systems' certificates, revocations.

    ``national`` maps an authority id to the certificate(s) bound to it (more
    than one during a rotation); certificates whose fingerprint is revoked are
    left out. ``revoked`` holds every revoked fingerprint: verifiers must
    refuse those certificates wherever they appear.
    """

    node_id: str
    node_ca: x509.Certificate
    peers: Mapping[str, PeerCertificates]
    national: Mapping[str, tuple[x509.Certificate, ...]]
    revoked: frozenset[str]

    def is_revoked(self, cert: x509.Certificate) -> bool:
        return certificate_fingerprint(cert) in self.revoked


def _validate_peer(
    node_id: str,
    ca: x509.Certificate,
    signing: x509.Certificate,
    tls: x509.Certificate,
    error: type[Exception],
    where: str,
) -> None:
    """Check a peer's certificates form one node identity; raise ``error`` otherwise."""
    if not _is_ca(ca):
        raise error(f"{where}: the CA certificate is not a CA")
    if not _issued_by(ca, ca):
        raise error(f"{where}: the CA certificate is not self-signed")
    expected = NODE_URI_PREFIX + node_id
    for name, cert in (("signing", signing), ("tls", tls)):
        if not _issued_by(cert, ca):
            raise error(f"{where}: the {name} certificate was not issued by the peer's CA")
        if expected not in identity_uris(cert):
            raise error(f"{where}: the {name} certificate is not bound to {expected}")


def _read_revoked(path: Path) -> dict[str, str]:
    """Revoked fingerprints with their comments."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        value, _, comment = line.partition("#")
        value = value.strip()
        if not value:
            continue
        fp = normalize_fingerprint(value)
        if fp is None:
            raise KeyStoreError(f"{path}:{number}: not a SHA-256 fingerprint")
        entries[fp] = comment.strip()
    return entries


def _with_previous(peer: PeerCertificates, entry: Path, now: datetime | None) -> PeerCertificates:
    """``peer`` with its previous certificates, while the rotation's overlap lasts."""
    previous = read_previous(entry, f"peer {peer.node_id}")
    if previous is None or not previous.active(now or datetime.now(UTC)):
        return peer
    for name, cert in (
        *(("signing", c) for c in previous.signing),
        *(("tls", c) for c in previous.tls),
    ):
        _validate_peer(peer.node_id, peer.ca, cert, cert, KeyStoreError, f"{entry} ({name})")
    return PeerCertificates(
        peer.node_id,
        peer.ca,
        peer.signing,
        peer.tls,
        previous_signing=previous.signing,
        previous_tls=previous.tls,
        overlap_until=previous.until,
    )


def read_revocations(node_dir: str | Path) -> Mapping[str, str]:
    """Revoked fingerprints of ``node_dir`` with the comment recorded for each."""
    return MappingProxyType(_read_revoked(node_paths(node_dir).revoked))


def load_trust(node_dir: str | Path, *, now: datetime | None = None) -> NodeTrust:
    """Read the trust store (peers, national systems, revocations) of ``node_dir``.

    Not cached: certificates load in microseconds and the operator may change
    the store while the node runs (reload on demand). A peer's previous
    certificates (a rotation's overlap) are read while ``now`` (default: the
    wall clock) is before the overlap's end.
    """
    paths = node_paths(node_dir)
    _require_node_dir(paths)
    node_ca = _load_cert(paths.cert("ca"), "the node CA certificate")
    own_uris = [
        u
        for u in identity_uris(_load_cert(paths.cert("signing"), "the node signing certificate"))
        if u.startswith(NODE_URI_PREFIX)
    ]
    if len(own_uris) != 1:
        raise KeyStoreError(f"{paths.cert('signing')}: no single node identity URI")
    node_id = own_uris[0][len(NODE_URI_PREFIX) :]
    revoked = _read_revoked(paths.revoked)
    peers: dict[str, PeerCertificates] = {}
    if paths.peers_dir.is_dir():
        for entry in sorted(paths.peers_dir.iterdir()):
            if entry.name.startswith("."):
                continue
            if not is_node_id(entry.name) or not entry.is_dir():
                raise KeyStoreError(f"{entry}: not a peer directory (named by a country code)")
            ca, signing, tls = (
                _load_cert(entry / f"{name}.pem", f"the {name} certificate of peer {entry.name}")
                for name in NODE_KEY_NAMES
            )
            _validate_peer(entry.name, ca, signing, tls, KeyStoreError, str(entry))
            peers[entry.name] = _with_previous(
                PeerCertificates(entry.name, ca, signing, tls), entry, now
            )
    national: dict[str, tuple[x509.Certificate, ...]] = {}
    if paths.national_dir.is_dir():
        for entry in sorted(paths.national_dir.glob("*.pem")):
            authority_id = entry.stem
            if not is_authority_id(authority_id):
                raise KeyStoreError(f"{entry}: not named by an authority id")
            certs = _load_certs(entry, f"the certificate of {authority_id}")
            expected = AUTHORITY_URI_PREFIX + authority_id
            for cert in certs:
                if expected not in identity_uris(cert):
                    raise KeyStoreError(f"{entry}: a certificate is not bound to {expected}")
                if not _issued_by(cert, node_ca):
                    raise KeyStoreError(f"{entry}: a certificate was not issued by the node CA")
            kept = tuple(c for c in certs if certificate_fingerprint(c) not in revoked)
            if kept:
                national[authority_id] = kept
    return NodeTrust(
        node_id=node_id,
        node_ca=node_ca,
        peers=MappingProxyType(peers),
        national=MappingProxyType(national),
        revoked=frozenset(revoked),
    )
