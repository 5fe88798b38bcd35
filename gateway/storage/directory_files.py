"""The authority directory on disk: this node's directory and the peers' cached ones.

Layout inside the node directory (docs/directory.md explains it to operators)::

    NODE_DIR/
      directory/                     0755
        state.json                   this node's directory: the registered
                                     authorities (operator data), the published
                                     version with its entries (certificates
                                     included) and the change history per version
        .lock                        exclusive lock for read-modify-write
      trust/peers/<PEER_ID>/
        directory.xml                the peer's directory as cached here: a full,
                                     unsigned AuthorityDirectory, the merge of
                                     every verified update applied

Every write is atomic (:func:`gateway.keystore.atomic_write`: temporary
file, fsync, rename, fsync of the directory), so after a crash each file is
either the old or the new one; ``state.json`` holds the records, the
published version and its history together for that reason. Mutations take
an exclusive lock on ``directory/.lock``, so the CLI and a running node can
share the node directory.

What lives here:

* :class:`DirectoryStore`: register / update / remove authorities (checked by
  :mod:`gateway.core.directory` against the catalogue, with a bound
  national-system certificate required), :meth:`~DirectoryStore.refresh`
  (publish a new version when the records or the bound certificates changed:
  a revoked certificate leaves the directory, a new one enters it), the
  document a peer asks for (:meth:`~DirectoryStore.document`), and, for
  peers, :meth:`~DirectoryStore.apply_peer_document` (verify the node
  signature against the peer's pinned signing certificate, check and apply,
  cache) and :meth:`~DirectoryStore.authority_certificates`;
* :func:`authority_certificates`: the certificates the inbound pipeline pins
  for documents signed by a peer's authorities;
* :meth:`DirectoryStore.file_signatures`: what changed on disk, for the live
  search (:mod:`gateway.service.directory_search`).

The signed documents a node serves its peers are made by
:mod:`gateway.service.directory_publish`; the JSON form of an entry is
:mod:`gateway.core.directory.jsonform`. No Twisted here; nothing is logged
(callers log counts and ids, never names or addresses).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from gateway import keystore
from gateway.core import directory as rules
from gateway.core import signing
from gateway.core.catalogue import Catalogue, load_catalogues
from gateway.core.certs import TrustStore
from gateway.core.directory import (
    AuthorityCertificateMissing,
    AuthorityExists,
    AuthorityUnknown,
    CachedDirectory,
    Change,
    DirectoryNodeMismatch,
    PublishedDirectory,
    UpdateResult,
)
from gateway.core.directory.document import (
    AuthorityDirectory,
    AuthorityEntry,
    read_directory,
    serialize_directory,
)
from gateway.core.directory.jsonform import entry_from_json, entry_to_json, json_str, json_strs
from gateway.core.docxml import format_datetime, parse_datetime
from gateway.core.errors import ConfigurationError, GatewayError, NotFound
from gateway.core.ns import is_node_id
from gateway.core.xmlparse import parse_xml

__all__ = [
    "DIRECTORY_DIR",
    "PEER_DIRECTORY_FILE",
    "STATE_FILE",
    "DirectoryPeerUnknown",
    "DirectoryStateInvalid",
    "DirectoryStore",
    "PeerUpdate",
    "authority_certificates",
]

DIRECTORY_DIR = "directory"
STATE_FILE = "state.json"
LOCK_FILE = ".lock"
PEER_DIRECTORY_FILE = "directory.xml"
STATE_FORMAT = "imi-gateway-directory-state"
STATE_FORMAT_VERSION = 1


class DirectoryStateInvalid(ConfigurationError):
    """The node's directory state file (directory/state.json) or a cached peer directory is unreadable."""

    code = "DIRECTORY_STATE_INVALID"


class DirectoryPeerUnknown(NotFound):
    """The peer is not known to this node (no pinned certificates under trust/peers/)."""

    code = "DIRECTORY_PEER_UNKNOWN"


# --- the state file ----------------------------------------------------------------------


@dataclass(frozen=True)
class _State:
    records: Mapping[str, AuthorityEntry]
    published: PublishedDirectory


def _state_to_json(state: _State) -> bytes:
    published = state.published
    document = {
        "format": STATE_FORMAT,
        "format_version": STATE_FORMAT_VERSION,
        "node_id": published.node_id,
        "authorities": [
            entry_to_json(e, certificates=False) for _, e in sorted(state.records.items())
        ],
        "published": {
            "version": published.version,
            "created": None if published.created is None else format_datetime(published.created),
            "authorities": [entry_to_json(e) for e in published.entries.values()],
        },
        "history": [
            {
                "version": c.version,
                "created": format_datetime(c.created),
                "changed": list(c.changed),
                "removed": list(c.removed),
            }
            for c in published.history
        ],
    }
    return (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def _state_from_json(data: bytes, path: Path, node_id: str) -> _State:
    try:
        document = json.loads(data.decode("utf-8"))
        if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
            raise ValueError("not a directory state file")
        if document.get("format_version") != STATE_FORMAT_VERSION:
            raise ValueError(f"unsupported format_version {document.get('format_version')!r}")
        if document.get("node_id") != node_id:
            raise ValueError(f"it belongs to node {document.get('node_id')!r}, not {node_id}")
        records = {e.authority_id: e for e in map(entry_from_json, document["authorities"])}
        pub = document["published"]
        created = pub.get("created")
        history = tuple(
            Change(
                int(c["version"]),
                parse_datetime(json_str(c["created"], "created")),
                json_strs(c["changed"], "changed"),
                json_strs(c["removed"], "removed"),
            )
            for c in document["history"]
        )
        published = PublishedDirectory(
            node_id=node_id,
            version=int(pub["version"]),
            created=None if created is None else parse_datetime(json_str(created, "created")),
            entries={e.authority_id: e for e in map(entry_from_json, pub["authorities"])},
            history=history,
        )
    except (ValueError, KeyError, TypeError, GatewayError, UnicodeDecodeError) as exc:
        raise DirectoryStateInvalid(
            f"{path}: unreadable directory state ({type(exc).__name__}: {exc})"
        ) from None
    return _State(records, published)


def _file_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


@dataclass(frozen=True)
class PeerUpdate:
    """What applying a peer's directory document did (ids and counts only: safe to log)."""

    peer_id: str
    version: int
    base_version: int | None
    full: bool
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: bool
    sha256: str

    @classmethod
    def of(
        cls, peer_id: str, update: AuthorityDirectory, result: UpdateResult, sha256: str
    ) -> PeerUpdate:
        return cls(
            peer_id,
            update.version,
            update.base_version,
            result.full,
            result.changed,
            result.removed,
            result.unchanged,
            sha256,
        )


class DirectoryStore:
    """This node's authority directory and the peers' cached directories, in ``node_dir``.

    ``catalogue`` (default: the newest installed version) checks the
    competences of authorities registered here. The store reads files afresh
    when they changed on disk (another process may have written them) and
    keeps the parsed form otherwise.
    """

    def __init__(
        self,
        node_dir: str | Path,
        *,
        catalogue: Catalogue | None = None,
        history_limit: int = rules.HISTORY_LIMIT,
    ) -> None:
        self.paths = keystore.node_paths(node_dir)
        self._catalogue = catalogue
        self._history_limit = history_limit
        self._node_id: str | None = None
        self._state: tuple[tuple[int, int, int] | None, _State] | None = None
        self._peers: dict[str, tuple[tuple[int, int, int] | None, CachedDirectory | None]] = {}
        self._pins: dict[str, tuple[Any, dict[str, tuple[x509.Certificate, ...]]]] = {}

    # -- basics ------------------------------------------------------------------------------

    @property
    def catalogue(self) -> Catalogue:
        if self._catalogue is None:
            self._catalogue = load_catalogues().latest
        return self._catalogue

    @property
    def directory_dir(self) -> Path:
        return self.paths.root / DIRECTORY_DIR

    @property
    def state_path(self) -> Path:
        return self.directory_dir / STATE_FILE

    def peer_cache_path(self, peer_id: str) -> Path:
        return self.paths.peer_dir(peer_id) / PEER_DIRECTORY_FILE

    @property
    def node_id(self) -> str:
        """This node's id (from its signing certificate)."""
        if self._node_id is None:
            self._node_id = keystore.load_trust(self.paths.root).node_id
        return self._node_id

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if not self.paths.config.exists():
            # Same refusal as the key store: not a node directory.
            keystore.load_trust(self.paths.root)
        self.directory_dir.mkdir(mode=0o755, exist_ok=True)
        fd = os.open(self.directory_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _load_state(self) -> _State:
        path = self.state_path
        signature = _file_signature(path)
        if self._state is not None and self._state[0] == signature and signature is not None:
            return self._state[1]
        if signature is None:
            state = _State({}, PublishedDirectory(self.node_id))
        else:
            state = _state_from_json(path.read_bytes(), path, self.node_id)
        self._state = (signature, state)
        return state

    def _save_state(self, state: _State) -> None:
        keystore.atomic_write(self.state_path, _state_to_json(state), 0o644)
        self._state = (_file_signature(self.state_path), state)

    # -- this node's authorities ----------------------------------------------------------------

    def records(self) -> dict[str, AuthorityEntry]:
        """The registered authorities (without certificates), by id."""
        return dict(self._load_state().records)

    def record(self, authority_id: str) -> AuthorityEntry:
        """The registered authority ``authority_id``, or AUTHORITY_UNKNOWN."""
        entry = self._load_state().records.get(authority_id)
        if entry is None:
            raise AuthorityUnknown(f"authority {authority_id} is not registered at this node")
        return entry

    def published(self) -> PublishedDirectory:
        """The directory as last published (see :meth:`refresh`)."""
        return self._load_state().published

    def _bound(self, trust: keystore.NodeTrust, authority_id: str) -> tuple[x509.Certificate, ...]:
        return tuple(c for c in trust.national.get(authority_id, ()) if not trust.is_revoked(c))

    def _publish(self, state: _State, trust: keystore.NodeTrust, now: datetime) -> _State:
        entries = [
            rules.bind_certificates(record, certificates)
            for authority_id, record in state.records.items()
            if (certificates := self._bound(trust, authority_id))
        ]
        published = state.published.commit(entries, now, history_limit=self._history_limit)
        return _State(state.records, published)

    def _mutate(
        self, now: datetime, change: Callable[[dict[str, AuthorityEntry], keystore.NodeTrust], None]
    ) -> PublishedDirectory:
        with self._locked():
            state = self._load_state()
            trust = keystore.load_trust(self.paths.root)
            records = dict(state.records)
            change(records, trust)
            new = self._publish(_State(records, state.published), trust, now)
            self._save_state(new)
            return new.published

    def _checked(self, entry: AuthorityEntry, trust: keystore.NodeTrust) -> AuthorityEntry:
        checked = rules.validate_authority(entry, node_id=self.node_id, catalogue=self.catalogue)
        checked = dataclasses.replace(checked, certificates=())
        if not self._bound(trust, checked.authority_id):
            raise AuthorityCertificateMissing(
                f"no valid national-system certificate is bound to {checked.authority_id}; "
                f"issue one first: imi-gateway keys issue-national NODE_DIR "
                f"{checked.authority_id} --out DIR"
            )
        return checked

    def add(self, entry: AuthorityEntry, *, now: datetime) -> PublishedDirectory:
        """Register a new authority and publish; AUTHORITY_EXISTS if it is registered."""
        rules.check_authority_id(entry.authority_id, self.node_id)

        def change(records: dict[str, AuthorityEntry], trust: keystore.NodeTrust) -> None:
            if entry.authority_id in records:
                raise AuthorityExists(
                    f"authority {entry.authority_id} is already registered (use update)"
                )
            records[entry.authority_id] = self._checked(entry, trust)

        return self._mutate(now, change)

    def update(
        self,
        authority_id: str,
        edit: Callable[[AuthorityEntry], AuthorityEntry],
        *,
        now: datetime,
    ) -> PublishedDirectory:
        """Replace a registered authority by ``edit(current)`` and publish."""
        rules.check_authority_id(authority_id, self.node_id)

        def change(records: dict[str, AuthorityEntry], trust: keystore.NodeTrust) -> None:
            current = records.get(authority_id)
            if current is None:
                raise AuthorityUnknown(f"authority {authority_id} is not registered at this node")
            edited = edit(current)
            if edited.authority_id != authority_id:
                raise rules.AuthorityFieldInvalid("an update cannot change the authority id")
            records[authority_id] = self._checked(edited, trust)

        return self._mutate(now, change)

    def remove(self, authority_id: str, *, now: datetime) -> PublishedDirectory:
        """Unregister an authority and publish its removal; AUTHORITY_UNKNOWN if absent."""
        rules.check_authority_id(authority_id)

        def change(records: dict[str, AuthorityEntry], trust: keystore.NodeTrust) -> None:
            if records.pop(authority_id, None) is None:
                raise AuthorityUnknown(f"authority {authority_id} is not registered at this node")

        return self._mutate(now, change)

    def refresh(self, *, now: datetime) -> PublishedDirectory:
        """Publish a new version if the records or bound certificates changed.

        The bound certificates are read from the key store
        (``national/<ID>.pem`` minus revoked ones): a rotation publishes the
        new certificate, a revocation removes the authority from the
        directory until a new certificate is bound. Nothing is written when
        nothing changed.
        """
        state = self._load_state()
        trust = keystore.load_trust(self.paths.root)
        if self._publish(state, trust, now).published is state.published:
            return state.published
        with self._locked():
            state = self._load_state()
            new = self._publish(state, keystore.load_trust(self.paths.root), now)
            if new.published is not state.published:
                self._save_state(new)
            return new.published

    def document(self, since: int | None, *, now: datetime) -> AuthorityDirectory | None:
        """What a peer holding version ``since`` needs (after :meth:`refresh`); None if up to date."""
        return self.refresh(now=now).since(since)

    def unpublished(self) -> list[str]:
        """Registered authorities that are not in the published directory (no valid certificate)."""
        state = self._load_state()
        return [i for i in state.records if i not in state.published.entries]

    # -- peers' directories ----------------------------------------------------------------------

    def cached(self, peer_id: str) -> CachedDirectory | None:
        """The cached directory of ``peer_id``, or None."""
        if not is_node_id(peer_id):
            raise DirectoryPeerUnknown(f"{peer_id!r} is not a node id")
        path = self.peer_cache_path(peer_id)
        signature = _file_signature(path)
        known = self._peers.get(peer_id)
        if known is not None and known[0] == signature:
            return known[1]
        cached: CachedDirectory | None = None
        if signature is not None:
            try:
                directory = read_directory(parse_xml(path.read_bytes()))
                if directory.node_id != peer_id:
                    raise DirectoryNodeMismatch(f"it is node {directory.node_id}'s directory")
                cached = CachedDirectory.from_directory(directory)
            except GatewayError as exc:
                raise DirectoryStateInvalid(
                    f"{path}: unreadable cached directory ({exc.code}: {exc}); delete it to "
                    "fetch the peer's full directory again"
                ) from None
        self._peers[peer_id] = (signature, cached)
        return cached

    def cached_peers(self) -> list[str]:
        """Ids of the peers whose directory is cached here."""
        if not self.paths.peers_dir.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.paths.peers_dir.iterdir()
            if is_node_id(entry.name) and (entry / PEER_DIRECTORY_FILE).is_file()
        )

    def apply_peer_document(self, peer_id: str, data: bytes, *, now: datetime) -> PeerUpdate:
        """Verify, check and apply a peer's signed directory document; cache the result.

        Verification: the node signature against the peer's pinned signing
        certificate (``trust/peers/<ID>/signing.pem``) at ``now``
        (SIGNATURE_*/CERTIFICATE_* codes), the document's schema, then
        :func:`gateway.core.directory.apply_update` (DIRECTORY_NODE_MISMATCH,
        DIRECTORY_INCONSISTENT, DIRECTORY_STALE, DIRECTORY_BASE_MISMATCH) and
        :func:`~gateway.core.directory.check_peer_certificates`
        (DIRECTORY_CERTIFICATE_INVALID). Nothing is stored unless all pass.
        """
        trust = keystore.load_trust(self.paths.root)
        peer = trust.peers.get(peer_id)
        if peer is None:
            raise DirectoryPeerUnknown(
                f"peer {peer_id} is not known to this node (import its bundle with "
                "imi-gateway keys import-peer)"
            )
        verified = signing.verify(
            data, TrustStore(pinned=peer.signing_set, revoked=trust.revoked), now=now
        )
        if verified.node_id != peer_id:
            raise DirectoryNodeMismatch(f"the directory is not signed by node {peer_id}")
        update = read_directory(verified.root)
        with self._locked():
            try:
                cached = self.cached(peer_id)
            except DirectoryStateInvalid:
                if update.incremental:
                    raise
                cached = None  # a full directory replaces an unreadable cache
            result = rules.apply_update(cached, update, peer_id=peer_id)
            if not result.unchanged:
                rules.check_peer_certificates(update, peer.ca, cached)
                path = self.peer_cache_path(peer_id)
                keystore.atomic_write(path, serialize_directory(result.directory.to_directory()))
                self._peers[peer_id] = (_file_signature(path), result.directory)
        return PeerUpdate.of(peer_id, update, result, verified.sha256)

    def authority_certificates(self, peer_id: str) -> dict[str, tuple[x509.Certificate, ...]]:
        """The certificates to pin for documents signed by ``peer_id``'s authorities.

        From the peer's cached directory, minus certificates this node has
        revoked (``revoked.txt``). Authorities with no certificate left are
        left out. Empty when no directory of the peer is cached. The result
        is kept until the cache file or ``revoked.txt`` changes, so calling
        this for every inbound document costs two ``stat`` calls.
        """
        cached = self.cached(peer_id)
        if cached is None:
            return {}
        key = (_file_signature(self.peer_cache_path(peer_id)), _file_signature(self.paths.revoked))
        known = self._pins.get(peer_id)
        if known is not None and known[0] == key:
            return dict(known[1])
        revoked = keystore.read_revocations(self.paths.root)
        result: dict[str, tuple[x509.Certificate, ...]] = {}
        for authority_id, entry in cached.entries.items():
            certificates = tuple(
                c
                for c in rules.entry_certificates(entry)
                if keystore.certificate_fingerprint(c) not in revoked
            )
            if certificates:
                result[authority_id] = certificates
        self._pins[peer_id] = (key, result)
        return dict(result)

    # -- everything, for search ------------------------------------------------------------------

    def node_entries(self) -> dict[str, Mapping[str, AuthorityEntry]]:
        """Every directory known here: this node's published one and each cached peer's."""
        result: dict[str, Mapping[str, AuthorityEntry]] = {self.node_id: self.published().entries}
        for peer_id in self.cached_peers():
            cached = self.cached(peer_id)
            if cached is not None:
                result[peer_id] = cached.entries
        return result

    def file_signatures(self) -> dict[str, tuple[int, int, int] | None]:
        """Per node known here, a signature of its directory file (inode, mtime, size;
        None when absent): it changes whenever the file is replaced."""
        sources = {self.node_id: self.state_path}
        for peer_id in self.cached_peers():
            sources[peer_id] = self.peer_cache_path(peer_id)
        return {node_id: _file_signature(path) for node_id, path in sources.items()}


def authority_certificates(
    node_dir_or_store: str | Path | DirectoryStore, peer_id: str
) -> dict[str, tuple[x509.Certificate, ...]]:
    """The certificates to pin for end-to-end signatures of ``peer_id``'s authorities.

    ``{authority_id: (certificate, ...)}`` from the verified, cached
    directory of the peer, without the certificates this node revoked. An
    authority lists several certificates during a key rollover: a document
    is acceptable when it verifies against any of them (build a
    ``TrustStore(pinned=...)`` from the tuple). Pass a long-lived
    :class:`DirectoryStore` (not a path) on a hot path: the store keeps the
    parsed certificates until the files change.
    """
    store = (
        node_dir_or_store
        if isinstance(node_dir_or_store, DirectoryStore)
        else DirectoryStore(node_dir_or_store)
    )
    return store.authority_certificates(peer_id)
