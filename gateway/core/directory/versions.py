"""Versions of directories: this node's published directory with its history, and peers' cached ones with the update rules (sans-IO)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature

from gateway.core import certs as certs_mod
from gateway.core.directory.document import (
    AuthorityDirectory,
    AuthorityEntry,
    DirectoryInconsistent,
)
from gateway.core.directory.errors import (
    DirectoryBaseMismatch,
    DirectoryCertificateInvalid,
    DirectoryNodeMismatch,
    DirectoryNotPublished,
    DirectoryStale,
)
from gateway.core.directory.rules import HISTORY_LIMIT

# --- publishing (this node's directory) ------------------------------------------------


@dataclass(frozen=True)
class Change:
    """What one version of a node's directory changed: authorities added or replaced, and removed."""

    version: int
    created: datetime
    changed: tuple[str, ...]
    removed: tuple[str, ...]


def _frozen(entries: Iterable[AuthorityEntry]) -> Mapping[str, AuthorityEntry]:
    by_id = {e.authority_id: e for e in entries}
    return MappingProxyType(dict(sorted(by_id.items())))


@dataclass(frozen=True)
class PublishedDirectory:
    """This node's published directory: version, authorities and change history.

    ``version`` 0 means nothing was published yet. ``history`` holds the
    changes of the most recent versions (at most ``HISTORY_LIMIT``), oldest
    first; :meth:`since` can answer incrementally for any base version from
    ``history[0].version - 1`` on.
    """

    node_id: str
    version: int = 0
    created: datetime | None = None
    entries: Mapping[str, AuthorityEntry] = field(default_factory=lambda: MappingProxyType({}))
    history: tuple[Change, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.entries, MappingProxyType):
            object.__setattr__(self, "entries", _frozen(self.entries.values()))

    def commit(
        self,
        entries: Iterable[AuthorityEntry],
        now: datetime,
        *,
        history_limit: int = HISTORY_LIMIT,
    ) -> PublishedDirectory:
        """The directory after publishing exactly ``entries``.

        Returns ``self`` when nothing changed (and something was published
        before); otherwise the next version, created at ``now`` (never
        earlier than the previous version's time), with its change recorded.
        The very first commit makes version 1 even with no authorities, so a
        peer always gets a valid document.
        """
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        new = _frozen(entries)
        prefix = self.node_id + "-"
        foreign = [i for i in new if not i.startswith(prefix)]
        if foreign:
            raise DirectoryInconsistent(
                f"node {self.node_id} may only publish authorities of its own country "
                f"({foreign[0]})"
            )
        changed = tuple(i for i, e in new.items() if self.entries.get(i) != e)
        removed = tuple(i for i in self.entries if i not in new)
        if self.version > 0 and not changed and not removed:
            return self
        created = now if self.created is None else max(now, self.created)
        version = self.version + 1
        history = (*self.history, Change(version, created, changed, removed))
        return PublishedDirectory(
            self.node_id, version, created, new, history[-max(1, history_limit) :]
        )

    @property
    def oldest_base(self) -> int:
        """The smallest base version :meth:`since` answers incrementally."""
        return self.history[0].version - 1 if self.history else self.version

    def full(self) -> AuthorityDirectory:
        """The full directory of the current version."""
        if self.version == 0 or self.created is None:
            raise DirectoryNotPublished(f"node {self.node_id} has not published a directory yet")
        return AuthorityDirectory(
            node_id=self.node_id,
            version=self.version,
            created=self.created,
            authorities=tuple(self.entries.values()),
        )

    def since(self, base: int | None) -> AuthorityDirectory | None:
        """What a peer holding version ``base`` needs; None when it is up to date.

        An incremental update (changed authorities as whole entries, removed
        ids) when ``base`` is within the history; the full directory when
        ``base`` is None, not positive, newer than the current version (this
        node's directory was restored from a backup) or older than the
        history -- and when the update would not be smaller than the full
        directory.
        """
        full = self.full()
        if base is None or base <= 0 or base > self.version or base < self.oldest_base:
            return full
        if base == self.version:
            return None
        touched: set[str] = set()
        for change in self.history:
            if change.version > base:
                touched.update(change.changed)
                touched.update(change.removed)
        ids = sorted(touched)
        authorities = tuple(self.entries[i] for i in ids if i in self.entries)
        removed = tuple(i for i in ids if i not in self.entries)
        if len(authorities) + len(removed) > len(self.entries):
            return full
        return AuthorityDirectory(
            node_id=self.node_id,
            version=self.version,
            created=full.created,
            authorities=authorities,
            removed=removed,
            base_version=base,
        )


# --- receiving (peers' directories) -----------------------------------------------------


@dataclass(frozen=True)
class CachedDirectory:
    """A peer's directory as this node holds it: the merge of every update applied."""

    node_id: str
    version: int
    created: datetime
    entries: Mapping[str, AuthorityEntry]

    def __post_init__(self) -> None:
        if not isinstance(self.entries, MappingProxyType):
            object.__setattr__(self, "entries", _frozen(self.entries.values()))

    @classmethod
    def from_directory(cls, directory: AuthorityDirectory) -> CachedDirectory:
        """The cache of a full directory."""
        if directory.incremental:
            raise DirectoryInconsistent("a cached directory is built from a full directory")
        return cls(
            directory.node_id,
            directory.version,
            directory.created,
            _frozen(directory.authorities),
        )

    def to_directory(self) -> AuthorityDirectory:
        """The cache as a full (unsigned) directory, e.g. to store it."""
        return AuthorityDirectory(
            node_id=self.node_id,
            version=self.version,
            created=self.created,
            authorities=tuple(self.entries.values()),
        )


@dataclass(frozen=True)
class UpdateResult:
    """What :func:`apply_update` did.

    ``changed``/``removed``: ids whose entries really changed or went away;
    ``unchanged``: the update was already applied (a retry), nothing to store.
    """

    directory: CachedDirectory
    full: bool
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: bool = False


def apply_update(
    cached: CachedDirectory | None, update: AuthorityDirectory, *, peer_id: str
) -> UpdateResult:
    """Apply a verified directory document from peer ``peer_id`` to the cache.

    Rules: the document must be ``peer_id``'s (DIRECTORY_NODE_MISMATCH) and
    every authority in it of ``peer_id``'s country (DIRECTORY_INCONSISTENT).
    A full directory replaces the cache unless it is older: a lower or equal
    version that was not created later than the cached one is
    DIRECTORY_STALE (a replay, or a rolled-back directory); a lower version
    created later is accepted (the peer restored its node from a backup). An
    incremental update must name the cached version as its base
    (DIRECTORY_BASE_MISMATCH otherwise: fetch the full directory). Applying
    the same document twice is harmless (``unchanged``).
    """
    if update.node_id != peer_id:
        raise DirectoryNodeMismatch(
            f"the directory is node {update.node_id}'s, expected peer {peer_id}'s"
        )
    prefix = peer_id + "-"
    for authority_id in [e.authority_id for e in update.authorities] + list(update.removed):
        if not authority_id.startswith(prefix):
            raise DirectoryInconsistent(
                f"peer {peer_id}'s directory lists {authority_id}, not an authority of {peer_id}"
            )
    same_document = (
        cached is not None and update.version == cached.version and update.created == cached.created
    )
    if not update.incremental:
        if cached is not None and not same_document and update.version <= cached.version:
            if update.created <= cached.created:
                raise DirectoryStale(
                    f"peer {peer_id}'s directory version {update.version} is not newer than "
                    f"the cached version {cached.version}"
                )
        new = CachedDirectory.from_directory(update)
        old = cached.entries if cached is not None else {}
        changed = tuple(i for i, e in new.entries.items() if old.get(i) != e)
        removed = tuple(i for i in old if i not in new.entries)
        return UpdateResult(new, True, changed, removed, unchanged=same_document and not changed)
    if cached is None:
        raise DirectoryBaseMismatch(
            f"an incremental update from peer {peer_id} but no directory of it is cached"
        )
    if same_document:
        return UpdateResult(cached, False, (), (), unchanged=True)
    if update.base_version != cached.version:
        raise DirectoryBaseMismatch(
            f"peer {peer_id}'s update applies to version {update.base_version}; "
            f"the cached version is {cached.version}"
        )
    entries = dict(cached.entries)
    changed_list = []
    for entry in update.authorities:
        if entries.get(entry.authority_id) != entry:
            changed_list.append(entry.authority_id)
        entries[entry.authority_id] = entry
    removed_list = [i for i in update.removed if entries.pop(i, None) is not None]
    new = CachedDirectory(peer_id, update.version, update.created, _frozen(entries.values()))
    return UpdateResult(new, False, tuple(changed_list), tuple(removed_list))


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    if cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, CryptoInvalidSignature):
        return False
    return True


def check_peer_certificates(
    update: AuthorityDirectory,
    peer_ca: x509.Certificate,
    cached: CachedDirectory | None = None,
) -> None:
    """Refuse a peer directory listing a certificate its authority may not sign with.

    Every certificate must be X.509 DER, bound to its authority (subjectAltName
    ``urn:imi-gateway:authority:<ID>``) and issued directly by the peer's
    pinned CA (``peer_ca``): DIRECTORY_CERTIFICATE_INVALID otherwise. A
    certificate already cached for the same authority is not checked again.
    Validity periods and revocation are checked when a signature is verified.
    """
    for entry in update.authorities:
        previous = cached.entries.get(entry.authority_id) if cached is not None else None
        known = set(previous.certificates) if previous is not None else set()
        for index, der in enumerate(entry.certificates, 1):
            if der in known:
                continue
            try:
                cert = x509.load_der_x509_certificate(der)
            except ValueError:
                raise DirectoryCertificateInvalid(
                    f"certificate {index} of {entry.authority_id} is not an X.509 certificate"
                ) from None
            if certs_mod.authority_id_of(cert) != entry.authority_id:
                raise DirectoryCertificateInvalid(
                    f"certificate {index} of {entry.authority_id} is not bound to it"
                )
            if not _issued_by(cert, peer_ca):
                raise DirectoryCertificateInvalid(
                    f"certificate {index} of {entry.authority_id} was not issued by the CA of "
                    f"node {update.node_id}"
                )


def entry_certificates(entry: AuthorityEntry) -> tuple[x509.Certificate, ...]:
    """The certificates an entry lists, parsed (entries have passed the directory checks)."""
    try:
        return tuple(x509.load_der_x509_certificate(der) for der in entry.certificates)
    except ValueError:
        raise DirectoryCertificateInvalid(
            f"a certificate of {entry.authority_id} is not an X.509 certificate"
        ) from None
