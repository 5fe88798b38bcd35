"""The node directory on disk: keys, certificates, trust store, and their rules.

Layout (keys/README.md explains it to operators)::

    NODE_DIR/                      0700
      gateway.toml                 configuration (gateway.config), 0600
      keys/                        0700, private keys only
        ca.key signing.key tls.key   PEM PKCS#8, 0600
        data.kek                   32 random bytes: key-encryption key for the
                                   per-exchange data keys (DESIGN.md §7), 0600
      certs/ca.pem signing.pem tls.pem
      trust/peers/<NODE_ID>/{ca,signing,tls}.pem   pinned certificates of a peer
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
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway import config as config_mod
from gateway.core import pki
from gateway.core.errors import ConfigurationError, Conflict, InvalidInput, NotFound
from gateway.core.ns import AUTHORITY_URI_PREFIX, NODE_URI_PREFIX, is_authority_id, is_node_id

PrivateKey = pki.PrivateKey

KEYS_DIR = "keys"
CERTS_DIR = "certs"
PEERS_DIR = "trust/peers"
NATIONAL_DIR = "national"
REVOKED_FILE = "revoked.txt"
LOCK_FILE = ".lock"
DATA_KEK_FILE = "data.kek"
DATA_KEK_BYTES = 32
NODE_KEY_NAMES = ("ca", "signing", "tls")
BUNDLE_FORMAT = "imi-gateway-node-bundle"
BUNDLE_VERSION = 1

_FINGERPRINT_RE = re.compile(r"\A[0-9a-f]{64}\Z")
_HOST_RE = re.compile(
    r"\A(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\Z"
)

# --- errors -----------------------------------------------------------------


class KeyStoreError(ConfigurationError):
    """The node's key store is missing a file or is inconsistent."""

    code = "KEYSTORE_INVALID"


class KeyFileMissing(KeyStoreError):
    """A key or certificate file of the node directory is missing."""

    code = "KEYSTORE_FILE_MISSING"


class KeyPermissionsTooOpen(KeyStoreError):
    """A private key file (or its directory) is accessible to other users; refusing to use it."""

    code = "KEYSTORE_PERMISSIONS_TOO_OPEN"


class NodeDirExists(ConfigurationError):
    """The node directory already exists and is not empty; refusing to overwrite it."""

    code = "NODE_DIR_EXISTS"


class OutputExists(ConfigurationError):
    """An output file already exists; refusing to overwrite it."""

    code = "OUTPUT_EXISTS"


class NodeIdInvalid(InvalidInput):
    """The node id is not an EEA country code."""

    code = "NODE_ID_INVALID"


class AuthorityIdInvalid(InvalidInput):
    """The authority id is malformed or does not belong to this node's country."""

    code = "AUTHORITY_ID_INVALID"


class PeerBundleInvalid(InvalidInput):
    """The peer bundle is malformed or its certificates do not form a valid node identity."""

    code = "PEER_BUNDLE_INVALID"


class PeerAlreadyKnown(Conflict):
    """The peer is already known with other certificates (import with --replace to rotate)."""

    code = "PEER_ALREADY_KNOWN"


class RevocationTargetUnknown(NotFound):
    """Neither a SHA-256 fingerprint nor an authority with a bound certificate."""

    code = "REVOCATION_TARGET_UNKNOWN"


# --- paths ------------------------------------------------------------------


@dataclass(frozen=True)
class NodePaths:
    """Where everything lives in a node directory."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / config_mod.CONFIG_FILE

    @property
    def keys_dir(self) -> Path:
        return self.root / KEYS_DIR

    @property
    def certs_dir(self) -> Path:
        return self.root / CERTS_DIR

    @property
    def peers_dir(self) -> Path:
        return self.root / PEERS_DIR

    @property
    def national_dir(self) -> Path:
        return self.root / NATIONAL_DIR

    @property
    def revoked(self) -> Path:
        return self.root / REVOKED_FILE

    @property
    def data_kek(self) -> Path:
        return self.keys_dir / DATA_KEK_FILE

    @property
    def database(self) -> Path:
        return self.root / config_mod.DATABASE_FILE

    def key(self, name: str) -> Path:
        """Private key file of ``name`` (``ca``, ``signing`` or ``tls``)."""
        return self.keys_dir / f"{name}.key"

    def cert(self, name: str) -> Path:
        """Certificate file of ``name`` (``ca``, ``signing`` or ``tls``)."""
        return self.certs_dir / f"{name}.pem"

    def peer_dir(self, node_id: str) -> Path:
        return self.peers_dir / node_id

    def national_cert(self, authority_id: str) -> Path:
        return self.national_dir / f"{authority_id}.pem"


def node_paths(node_dir: str | Path) -> NodePaths:
    """The paths of the node directory ``node_dir`` (made absolute)."""
    return NodePaths(Path(node_dir).absolute())


# --- small helpers ------------------------------------------------------------


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """Lower-case hex SHA-256 of the certificate's DER encoding."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def normalize_fingerprint(value: str) -> str | None:
    """``value`` as a canonical fingerprint (colons, spaces and case ignored), or None."""
    candidate = re.sub(r"[\s:]", "", value).lower()
    if candidate.startswith("sha256"):
        candidate = candidate[len("sha256") :].lstrip("=")
    return candidate if _FINGERPRINT_RE.match(candidate) else None


def identity_uris(cert: x509.Certificate) -> list[str]:
    """The subjectAltName URIs of ``cert``."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically, the new file having ``mode``.

    The bytes go to a temporary file in the same directory (created with
    ``mode`` from the start, so a private key is never readable by others even
    for a moment), which is fsynced, renamed over ``path``, and the directory
    fsynced: after a crash the file is either the old one or the new one.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _require_node_dir(paths: NodePaths) -> None:
    if not paths.config.exists():
        raise config_mod.ConfigNotFound(
            f"{paths.root} is not a node directory (no {config_mod.CONFIG_FILE}); "
            "create one with: imi-gateway init"
        )


@contextlib.contextmanager
def _locked(paths: NodePaths) -> Iterator[None]:
    """Exclusive lock on the node directory for a read-modify-write."""
    _require_node_dir(paths)
    fd = os.open(paths.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_checked(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileMissing(f"{path}: {what} is missing") from None


def _read_private(path: Path, what: str) -> bytes:
    """Read a private file, refusing it when others could read it too."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyFileMissing(f"{path}: {what} is missing") from None
    try:
        st = os.fstat(fd)
        _check_private_mode(path, st, "file", "600")
        dir_st = os.stat(path.parent)
        _check_private_mode(path.parent, dir_st, "directory", "700")
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _check_private_mode(path: Path, st: os.stat_result, kind: str, fix: str) -> None:
    if st.st_mode & 0o077:
        raise KeyPermissionsTooOpen(
            f"permissions {stat.S_IMODE(st.st_mode):04o} for {kind} {path} are too open: "
            f"private keys must not be accessible to group or others (chmod {fix} {path})"
        )
    if st.st_uid not in (os.geteuid(), 0):
        raise KeyPermissionsTooOpen(
            f"{kind} {path} is owned by uid {st.st_uid}, not by this user ({os.geteuid()})"
        )


def _load_certs(path: Path, what: str) -> list[x509.Certificate]:
    data = _read_checked(path, what)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise KeyStoreError(f"{path}: {what} is not a PEM certificate") from None
    return certs


def _load_cert(path: Path, what: str) -> x509.Certificate:
    certs = _load_certs(path, what)
    if len(certs) != 1:
        raise KeyStoreError(f"{path}: {what} must hold exactly one certificate")
    return certs[0]


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _same_public_key(key: PrivateKey, cert: x509.Certificate) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*fmt) == cert.public_key().public_bytes(*fmt)


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, CryptoInvalidSignature):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


# --- node keys ----------------------------------------------------------------


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


# --- trust store ------------------------------------------------------------------


@dataclass(frozen=True)
class PeerCertificates:
    """The pinned certificates of a peer node."""

    node_id: str
    ca: x509.Certificate
    signing: x509.Certificate
    tls: x509.Certificate

    def all(self) -> tuple[x509.Certificate, ...]:
        return (self.ca, self.signing, self.tls)


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


def read_revocations(node_dir: str | Path) -> Mapping[str, str]:
    """Revoked fingerprints of ``node_dir`` with the comment recorded for each."""
    return MappingProxyType(_read_revoked(node_paths(node_dir).revoked))


def load_trust(node_dir: str | Path) -> NodeTrust:
    """Read the trust store (peers, national systems, revocations) of ``node_dir``.

    Not cached: certificates load in microseconds and the operator may change
    the store while the node runs (reload on demand).
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
            peers[entry.name] = PeerCertificates(entry.name, ca, signing, tls)
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


# --- init -------------------------------------------------------------------------


@dataclass(frozen=True)
class InitOptions:
    """What ``imi-gateway init`` was asked for."""

    country: str
    languages: tuple[str, ...] | None = None
    api_port: int = 8443
    peer_port: int = 9443
    metrics_port: int = 9100
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
    public_url: str | None = None


REVOKED_HEADER = (
    "# Certificates this node has revoked or unbound: one SHA-256 fingerprint\n"
    "# (hex of the DER encoding) per line; text after '#' is a comment.\n"
    "# Maintained by `imi-gateway keys revoke`.\n"
)


def _split_hosts(hosts: Sequence[str]) -> tuple[list[str], list[str]]:
    dns: list[str] = []
    ips: list[str] = []
    for host in hosts:
        try:
            ips.append(str(ipaddress.ip_address(host)))
        except ValueError:
            if not _HOST_RE.match(host):
                raise InvalidInput(
                    f"--host {host!r} is neither a DNS name nor an IP address"
                ) from None
            dns.append(host.lower())
    return dns, ips


def init_node_dir(
    node_dir: str | Path, options: InitOptions, *, now: datetime | None = None
) -> NodeKeys:
    """Create a new node directory (see the module docstring for its layout).

    Refuses an existing non-empty directory (:class:`NodeDirExists`) and an
    invalid country (:class:`NodeIdInvalid`). A new directory is built next to
    the target under a temporary name and renamed into place, so a crash never
    leaves a half-made node directory behind.
    """
    target = Path(node_dir).absolute()
    country = options.country
    if not is_node_id(country):
        raise NodeIdInvalid(f"{country!r} is not an EEA country code (upper case, e.g. NO, PT, EL)")
    if not options.hosts:
        raise InvalidInput("at least one --host is needed for the TLS certificate")
    dns_names, ip_addresses = _split_hosts(options.hosts)
    public_url = options.public_url
    if public_url is None:
        first = options.hosts[0]
        shown = f"[{first}]" if ":" in first else first
        public_url = f"https://{shown}:{options.peer_port}"
    text = config_mod.render_config_template(
        country,
        languages=options.languages,
        api_port=options.api_port,
        peer_port=options.peer_port,
        metrics_port=options.metrics_port,
        public_url=public_url,
    )
    try:  # validates languages, ports and URL before anything is created
        config_mod.parse_config(text, target, source="the options")
    except config_mod.ConfigInvalid as exc:
        raise InvalidInput(exc.message) from None
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise NodeDirExists(f"{target} already exists and is not empty; refusing to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    in_place = target.exists()
    build = (
        target if in_place else Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    )
    try:
        os.chmod(build, 0o700)
        _populate(node_paths(build), country, text, dns_names, ip_addresses, _now(now))
        if not in_place:
            try:
                os.rename(build, target)
            except OSError:
                raise NodeDirExists(
                    f"{target} appeared while it was being created; refusing to overwrite it"
                ) from None
            _fsync_dir(target.parent)
    except BaseException:
        if in_place:
            for child in target.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        else:
            shutil.rmtree(build, ignore_errors=True)
        raise
    return load_node_keys(target)


def _populate(
    paths: NodePaths,
    country: str,
    config_text: str,
    dns_names: list[str],
    ip_addresses: list[str],
    now: datetime,
) -> None:
    for directory, mode in (
        (paths.keys_dir, 0o700),
        (paths.certs_dir, 0o755),
        (paths.peers_dir.parent, 0o755),
        (paths.peers_dir, 0o755),
        (paths.national_dir, 0o755),
    ):
        directory.mkdir(mode=mode)
        os.chmod(directory, mode)
    ca = pki.make_ca(country, now=now)
    signing = pki.issue_node_signing(ca, country, now=now)
    tls = pki.issue_node_tls(ca, country, now=now, dns_names=dns_names, ip_addresses=ip_addresses)
    for name, issued in (("ca", ca), ("signing", signing), ("tls", tls)):
        atomic_write(paths.key(name), _key_pem(issued.key), 0o600)
        atomic_write(paths.cert(name), _cert_pem(issued.certificate), 0o644)
    atomic_write(paths.data_kek, secrets.token_bytes(DATA_KEK_BYTES), 0o600)
    atomic_write(paths.revoked, REVOKED_HEADER.encode(), 0o644)
    atomic_write(paths.config, config_text.encode("utf-8"), 0o600)


# --- national systems -------------------------------------------------------------


@dataclass(frozen=True)
class NationalIssued:
    """A certificate issued to a national system, and where its files went."""

    authority_id: str
    certificate: x509.Certificate
    key_path: Path
    certificate_path: Path
    node_ca_path: Path
    registered: bool

    @property
    def fingerprint(self) -> str:
        return certificate_fingerprint(self.certificate)


def check_authority_id(authority_id: str, node_id: str) -> None:
    """Raise :class:`AuthorityIdInvalid` unless ``authority_id`` belongs to node ``node_id``."""
    if not is_authority_id(authority_id):
        raise AuthorityIdInvalid(
            f"{authority_id!r} is not an authority id (country code, hyphen, 1-40 upper-case "
            "ASCII letters, digits or hyphens, e.g. NO-HELSEDIR)"
        )
    if authority_id[:2] != node_id:
        raise AuthorityIdInvalid(
            f"{authority_id} belongs to country {authority_id[:2]}; this node ({node_id}) "
            "only issues certificates to its own country's authorities"
        )


def issue_national_certificate(
    node_dir: str | Path,
    authority_id: str,
    out_dir: str | Path,
    *,
    kind: str = "ec",
    days: int = 825,
    now: datetime | None = None,
) -> NationalIssued:
    """Issue a certificate bound to ``authority_id`` for its national system.

    Writes ``<AUTHORITY_ID>.key`` (0600: it belongs to the national system,
    hand it over securely and delete this copy), ``<AUTHORITY_ID>.pem`` and
    ``node-ca.pem`` (to verify the node's TLS certificate and signatures)
    into ``out_dir`` (created 0700 if missing; existing files are never
    overwritten), then binds the certificate to the authority under
    ``national/`` (next to any certificate already bound, for a rotation) and
    registers the authority in gateway.toml if it is not yet.
    """
    paths = node_paths(node_dir)
    keys = load_node_keys(paths.root)
    check_authority_id(authority_id, keys.node_id)
    if kind not in ("ec", "rsa", "rsa3072"):
        raise InvalidInput(f"unknown key kind {kind!r} (ec, rsa, rsa3072)")
    if not 1 <= days <= 3650:
        raise InvalidInput("the validity must be between 1 and 3650 days")
    out = Path(out_dir).absolute()
    key_path = out / f"{authority_id}.key"
    cert_path = out / f"{authority_id}.pem"
    ca_path = out / "node-ca.pem"
    for existing in (key_path, cert_path):
        if existing.exists():
            raise OutputExists(f"{existing} already exists; refusing to overwrite it")
    issued = pki.issue_national_system(
        keys.ca.issued, authority_id, now=_now(now), days=days, kind=kind
    )
    with _locked(paths):
        text = paths.config.read_text(encoding="utf-8")
        new_text = config_mod.with_authority(text, paths.root, authority_id)
        if not out.exists():
            out.mkdir(mode=0o700, parents=True)
        atomic_write(key_path, _key_pem(issued.key), 0o600)
        atomic_write(cert_path, _cert_pem(issued.certificate), 0o644)
        atomic_write(ca_path, _cert_pem(keys.ca.certificate), 0o644)
        bound = paths.national_cert(authority_id)
        previous = bound.read_bytes() if bound.exists() else b""
        atomic_write(bound, previous + _cert_pem(issued.certificate), 0o644)
        if new_text != text:
            atomic_write(paths.config, new_text.encode("utf-8"), _file_mode(paths.config))
    return NationalIssued(
        authority_id, issued.certificate, key_path, cert_path, ca_path, new_text != text
    )


def _file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- peers -----------------------------------------------------------------------


def export_node_bundle(node_dir: str | Path) -> bytes:
    """The public bundle a peer operator imports: node id, peer URL and certificates.

    JSON (UTF-8) with the PEM certificates inside. It holds no secret, but the
    receiving operator must compare the CA fingerprint with this node's
    (``imi-gateway keys show``) over another channel before trusting it.
    """
    paths = node_paths(node_dir)
    config = config_mod.load_config(paths.root)
    certs = {
        name: _load_cert(paths.cert(name), f"the node {name} certificate")
        for name in NODE_KEY_NAMES
    }
    bundle = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "node_id": config.node_id,
        "url": config.peer.public_url,
        "certificates": {name: _cert_pem(cert).decode("ascii") for name, cert in certs.items()},
        "fingerprints": {name: certificate_fingerprint(cert) for name, cert in certs.items()},
    }
    return (json.dumps(bundle, indent=2) + "\n").encode("utf-8")


@dataclass(frozen=True)
class ImportedPeer:
    """The result of :func:`import_peer`."""

    certificates: PeerCertificates
    url: str
    changed: bool

    @property
    def ca_fingerprint(self) -> str:
        return certificate_fingerprint(self.certificates.ca)


def parse_node_bundle(
    bundle: bytes, *, now: datetime | None = None
) -> tuple[PeerCertificates, str | None]:
    """Check a peer bundle; return its certificates and announced URL."""
    try:
        data = json.loads(bundle.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise PeerBundleInvalid(
            "the bundle is not UTF-8 JSON (use the output of keys export)"
        ) from None
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        raise PeerBundleInvalid(f"the bundle is not an {BUNDLE_FORMAT}")
    if data.get("version") != BUNDLE_VERSION:
        raise PeerBundleInvalid(f"unsupported bundle version {data.get('version')!r}")
    node_id = data.get("node_id")
    if not isinstance(node_id, str) or not is_node_id(node_id):
        raise PeerBundleInvalid("the bundle's node_id is not an EEA country code")
    url = data.get("url")
    if url is not None and not isinstance(url, str):
        raise PeerBundleInvalid("the bundle's url is not a string")
    pems = data.get("certificates")
    if not isinstance(pems, dict) or set(pems) != set(NODE_KEY_NAMES):
        raise PeerBundleInvalid("the bundle must hold exactly the ca, signing and tls certificates")
    certs: dict[str, x509.Certificate] = {}
    for name in NODE_KEY_NAMES:
        pem = pems[name]
        try:
            if not isinstance(pem, str):
                raise ValueError
            certs[name] = x509.load_pem_x509_certificate(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise PeerBundleInvalid(f"the bundle's {name} certificate is not PEM") from None
    _validate_peer(
        node_id, certs["ca"], certs["signing"], certs["tls"], PeerBundleInvalid, "bundle"
    )
    moment = _now(now)
    for name, cert in certs.items():
        if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
            raise PeerBundleInvalid(f"the bundle's {name} certificate is not valid now")
    return PeerCertificates(node_id, certs["ca"], certs["signing"], certs["tls"]), url


def import_peer(
    node_dir: str | Path,
    bundle_bytes: bytes,
    *,
    url: str | None = None,
    replace: bool = False,
    now: datetime | None = None,
) -> ImportedPeer:
    """Store a peer's certificates under trust/peers/<ID>/ and add it to gateway.toml.

    The peer's URL is ``url`` if given, else the one already configured for
    the peer, else the one announced in the bundle. Importing the same
    certificates again changes at most the URL. Other certificates for a known
    peer are refused (:class:`PeerAlreadyKnown`) unless ``replace`` is true (a
    rotation: the old certificates are replaced; revoke them if compromised).
    """
    paths = node_paths(node_dir)
    peer, announced = parse_node_bundle(bundle_bytes, now=now)
    with _locked(paths):
        configured = config_mod.load_config(paths.root).peer_config(peer.node_id)
        peer_url = url or (configured.url if configured else None) or announced
        if not peer_url:
            raise PeerBundleInvalid("the bundle announces no URL: give one with --url")
        try:
            config_mod.PeerConfig(peer.node_id, peer_url)
        except config_mod.ConfigValueInvalid as exc:
            raise PeerBundleInvalid(f"peer URL: {exc.message}") from None
        own = load_trust(paths.root)
        if peer.node_id == own.node_id:
            raise PeerBundleInvalid(f"the bundle is this node's own ({own.node_id})")
        for cert in peer.all():
            if certificate_fingerprint(cert) in own.revoked:
                raise PeerBundleInvalid(
                    f"the bundle holds a revoked certificate ({certificate_fingerprint(cert)})"
                )
        existing = own.peers.get(peer.node_id)
        same = existing is not None and [certificate_fingerprint(c) for c in existing.all()] == [
            certificate_fingerprint(c) for c in peer.all()
        ]
        if existing is not None and not same and not replace:
            raise PeerAlreadyKnown(
                f"peer {peer.node_id} is already known with other certificates; "
                "check the new fingerprints with its operator, then import with --replace"
            )
        text = paths.config.read_text(encoding="utf-8")
        new_text = config_mod.with_peer(text, paths.root, peer.node_id, peer_url)
        if not same:
            directory = paths.peer_dir(peer.node_id)
            directory.mkdir(mode=0o755, parents=True, exist_ok=True)
            for name, cert in zip(NODE_KEY_NAMES, peer.all(), strict=True):
                atomic_write(directory / f"{name}.pem", _cert_pem(cert), 0o644)
        if new_text != text:
            atomic_write(paths.config, new_text.encode("utf-8"), _file_mode(paths.config))
    return ImportedPeer(peer, peer_url, changed=not same or new_text != text)


# --- revocation ------------------------------------------------------------------


@dataclass(frozen=True)
class Revocation:
    """What :func:`revoke` did."""

    fingerprints: tuple[str, ...]
    unbound: tuple[str, ...]
    described: tuple[str, ...]
    already_revoked: bool


def revoke(node_dir: str | Path, target: str, *, now: datetime | None = None) -> Revocation:
    """Revoke a certificate by fingerprint, or every certificate bound to an authority.

    The fingerprints are added to revoked.txt (verifiers refuse them); a
    national-system certificate is also unbound (moved from
    ``national/<ID>.pem`` to ``national/revoked/<FP>.pem``). A fingerprint that
    matches no known certificate is still recorded (it may belong to a
    certificate issued elsewhere) and reported as unknown in ``described``.
    Revoking again is harmless.
    """
    paths = node_paths(node_dir)
    moment = _now(now).strftime("%Y-%m-%dT%H:%M:%SZ")
    with _locked(paths):
        trust = load_trust(paths.root)
        revoked = _read_revoked(paths.revoked)
        fingerprint = normalize_fingerprint(target)
        bound = _bound_national(paths)
        if fingerprint is not None:
            targets = [fingerprint]
        elif is_authority_id(target):
            targets = [certificate_fingerprint(c) for c in bound.get(target, [])]
            if not targets:
                raise RevocationTargetUnknown(f"no certificate is bound to authority {target}")
        else:
            raise RevocationTargetUnknown(
                f"{target!r} is neither a SHA-256 fingerprint (64 hex digits) nor an authority id"
            )
        known = _known_certificates(paths, trust, bound)
        described = []
        for fp in targets:
            what = known.get(fp)
            described.append(
                f"{fp}  {what[0]}" if what else f"{fp}  (not a certificate of this node)"
            )
        lines = [
            f"{fp}  # {moment} {known[fp][0] if fp in known else 'unknown certificate'}\n"
            for fp in targets
            if fp not in revoked
        ]
        if lines:
            current = (
                paths.revoked.read_bytes() if paths.revoked.exists() else REVOKED_HEADER.encode()
            )
            if current and not current.endswith(b"\n"):
                current += b"\n"
            atomic_write(paths.revoked, current + "".join(lines).encode("utf-8"), 0o644)
        unbound = _unbind(paths, bound, set(targets))
    already = not lines and not unbound
    return Revocation(tuple(targets), tuple(unbound), tuple(described), already)


def _bound_national(paths: NodePaths) -> dict[str, list[x509.Certificate]]:
    bound: dict[str, list[x509.Certificate]] = {}
    if paths.national_dir.is_dir():
        for entry in sorted(paths.national_dir.glob("*.pem")):
            bound[entry.stem] = _load_certs(entry, f"the certificate of {entry.stem}")
    return bound


def _known_certificates(
    paths: NodePaths, trust: NodeTrust, bound: Mapping[str, list[x509.Certificate]]
) -> dict[str, tuple[str, x509.Certificate]]:
    known: dict[str, tuple[str, x509.Certificate]] = {}
    for name in NODE_KEY_NAMES:
        cert = _load_cert(paths.cert(name), f"the node {name} certificate")
        known[certificate_fingerprint(cert)] = (f"this node's {name} certificate", cert)
    for peer in trust.peers.values():
        for name, cert in zip(NODE_KEY_NAMES, peer.all(), strict=True):
            known[certificate_fingerprint(cert)] = (f"peer {peer.node_id} {name} certificate", cert)
    for authority_id, certs in bound.items():
        for cert in certs:
            known[certificate_fingerprint(cert)] = (f"national system {authority_id}", cert)
    return known


def _unbind(
    paths: NodePaths, bound: Mapping[str, list[x509.Certificate]], targets: set[str]
) -> list[str]:
    unbound = []
    for authority_id, certs in bound.items():
        gone = [c for c in certs if certificate_fingerprint(c) in targets]
        if not gone:
            continue
        archive = paths.national_dir / "revoked"
        archive.mkdir(mode=0o755, exist_ok=True)
        for cert in gone:
            atomic_write(archive / f"{certificate_fingerprint(cert)}.pem", _cert_pem(cert), 0o644)
        kept = [c for c in certs if certificate_fingerprint(c) not in targets]
        bound_path = paths.national_cert(authority_id)
        if kept:
            atomic_write(bound_path, b"".join(_cert_pem(c) for c in kept), 0o644)
        else:
            bound_path.unlink()
            _fsync_dir(bound_path.parent)
        unbound.append(authority_id)
    return unbound


# --- listing (keys show) -------------------------------------------------------------


@dataclass(frozen=True)
class CertificateInfo:
    """A certificate as ``keys show`` lists it."""

    role: str
    subject: str
    fingerprint: str
    not_before: datetime
    not_after: datetime
    names: tuple[str, ...]
    revoked: bool

    def status(self, now: datetime) -> str:
        if self.revoked:
            return "REVOKED"
        if now < self.not_before:
            return "NOT YET VALID"
        if now > self.not_after:
            return "EXPIRED"
        days = (self.not_after - now).days
        return f"expires in {days} days" if days < 30 else "valid"

    def as_json(self, now: datetime) -> dict[str, object]:
        return {
            "role": self.role,
            "subject": self.subject,
            "sha256": self.fingerprint,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "names": list(self.names),
            "status": self.status(now),
        }


def certificate_info(
    role: str, cert: x509.Certificate, revoked: frozenset[str] | set[str]
) -> CertificateInfo:
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += list(san.get_values_for_type(x509.UniformResourceIdentifier))
        names += list(san.get_values_for_type(x509.DNSName))
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    fp = certificate_fingerprint(cert)
    return CertificateInfo(
        role=role,
        subject=cert.subject.rfc4514_string(),
        fingerprint=fp,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        names=tuple(names),
        revoked=fp in revoked,
    )


__all__ = [
    "AuthorityIdInvalid",
    "CertificateInfo",
    "ImportedPeer",
    "InitOptions",
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
    "Revocation",
    "RevocationTargetUnknown",
    "atomic_write",
    "certificate_fingerprint",
    "certificate_info",
    "check_authority_id",
    "clear_key_cache",
    "export_node_bundle",
    "import_peer",
    "init_node_dir",
    "issue_national_certificate",
    "load_data_kek",
    "load_node_keys",
    "load_trust",
    "node_paths",
    "normalize_fingerprint",
    "parse_node_bundle",
    "read_revocations",
    "revoke",
]
