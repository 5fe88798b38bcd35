"""The authority directory: registration rules, versions and incremental updates (sans-IO).

A node serves a set of national authorities and publishes them to its peers
as a signed, versioned ``AuthorityDirectory`` document (the document format
is :mod:`gateway.core.directory.document`). This module holds the rules around that
document:

* **registration** -- :func:`check_authority_id` (ASCII only: a look-alike
  letter such as the Cyrillic ``О`` in ``NO-HELSEDIR`` is refused and named),
  :func:`validate_authority` (names, address, region, competences checked
  against the question catalogue, working languages) and
  :func:`bind_certificates` (the national-system certificates bound to the
  authority, which peers pin);
* **publishing** -- :class:`PublishedDirectory`: the node's own directory, its
  version number and a bounded history of which authorities each version
  changed or removed, so that :meth:`PublishedDirectory.since` answers a
  peer that holds version N with only what changed after N (or the full
  directory when N is unknown or older than the history);
* **receiving** -- :class:`CachedDirectory` and :func:`apply_update`: a peer's
  directory as this node caches it, and the rules for applying a full or
  incremental update (right peer, right base version, no rollback to an older
  directory), plus :func:`check_peer_certificates`: every certificate a peer
  lists must be bound to its authority and issued by that peer's pinned CA.

Nothing here reads files, touches the network or the clock (``now`` is an
argument) or logs. Error messages name codes and ids, never personal data.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import serialization

from gateway.core import certs as certs_mod
from gateway.core.catalogue import Catalogue, check_language
from gateway.core.directory.document import (
    Address,
    AuthorityDirectory,
    AuthorityEntry,
    Competence,
    DirectoryInconsistent,
)
from gateway.core.docxml import LocalizedText
from gateway.core.errors import Conflict, InvalidInput, NotFound
from gateway.core.ns import AUTHORITY_ID_RE, is_authority_id

__all__ = [
    "HISTORY_LIMIT",
    "MAX_CERTIFICATES",
    "AuthorityCertificateMissing",
    "AuthorityCompetenceInvalid",
    "AuthorityCountryMismatch",
    "AuthorityExists",
    "AuthorityFieldInvalid",
    "AuthorityIdMalformed",
    "AuthorityUnknown",
    "CachedDirectory",
    "Change",
    "DirectoryBaseMismatch",
    "DirectoryCertificateInvalid",
    "DirectoryNodeMismatch",
    "DirectoryNotPublished",
    "DirectoryStale",
    "PublishedDirectory",
    "UpdateResult",
    "apply_update",
    "bind_certificates",
    "check_authority_id",
    "check_peer_certificates",
    "check_region",
    "entry_certificates",
    "validate_authority",
]

#: How many versions of change history a node keeps: a peer more than this
#: many versions behind receives the full directory.
HISTORY_LIMIT = 1000
#: The most certificates an authority lists (directory.xsd): several during a
#: key rollover.
MAX_CERTIFICATES = 4
#: Limits of directory.xsd / common.xsd, checked here with clear messages.
MAX_NAMES = 27
MAX_TEXT = 300
MAX_ADDRESS_LINES = 4
MAX_POSTAL_CODE = 64
MAX_COMPETENCES = 50
MAX_CODES_PER_COMPETENCE = 100

#: A NUTS region code (directory.xsd RegionCode); it must start with the
#: authority's country code.
REGION_RE = re.compile(r"\A[A-Z]{2}[A-Z0-9]{1,3}\Z")


# --- errors -------------------------------------------------------------------


class AuthorityIdMalformed(InvalidInput):
    """The authority id is not an EEA country code, a hyphen and 1-40 upper-case ASCII letters, digits or inner hyphens (look-alike Unicode letters are refused)."""

    code = "AUTHORITY_ID_MALFORMED"


class AuthorityCountryMismatch(InvalidInput):
    """The authority id's country prefix is not this node's country."""

    code = "AUTHORITY_COUNTRY_MISMATCH"


class AuthorityFieldInvalid(InvalidInput):
    """A name, address, region or working language of the authority is missing or invalid."""

    code = "AUTHORITY_FIELD_INVALID"


class AuthorityCompetenceInvalid(InvalidInput):
    """A competence is inconsistent with the catalogue (a question set or profession of another legislation area, an area listed twice)."""

    code = "AUTHORITY_COMPETENCE_INVALID"


class AuthorityExists(Conflict):
    """The authority is already registered in this node's directory (use update)."""

    code = "AUTHORITY_EXISTS"


class AuthorityUnknown(NotFound):
    """No authority with this id is registered (or cached from the peer)."""

    code = "AUTHORITY_UNKNOWN"


class AuthorityCertificateMissing(Conflict):
    """No valid national-system certificate is bound to the authority (issue one with imi-gateway keys issue-national)."""

    code = "AUTHORITY_CERTIFICATE_MISSING"


class DirectoryNotPublished(NotFound):
    """This node has not published a directory yet."""

    code = "DIRECTORY_NOT_PUBLISHED"


class DirectoryNodeMismatch(InvalidInput):
    """The authority directory is not the expected peer's (its node id or signer is another node)."""

    code = "DIRECTORY_NODE_MISMATCH"


class DirectoryBaseMismatch(Conflict):
    """The incremental directory update does not apply to the cached version; fetch the full directory."""

    code = "DIRECTORY_BASE_MISMATCH"


class DirectoryStale(Conflict):
    """The authority directory is older than the one already cached (replayed or rolled back)."""

    code = "DIRECTORY_STALE"


class DirectoryCertificateInvalid(InvalidInput):
    """A certificate listed for an authority is not bound to it or not issued by its node's CA."""

    code = "DIRECTORY_CERTIFICATE_INVALID"


# --- registration rules ----------------------------------------------------------


def _show(value: str, limit: int = 64) -> str:
    text = value[:limit] + ("..." if len(value) > limit else "")
    return repr(text)


def check_authority_id(value: str, node_id: str | None = None) -> str:
    """Return ``value`` if it is a well-formed authority id (of ``node_id``'s country).

    Raises AUTHORITY_ID_MALFORMED -- naming the first non-ASCII character, so
    an operator sees *why* ``NO-HELSEDIR`` written with a Cyrillic ``О`` is
    refused -- or AUTHORITY_COUNTRY_MISMATCH.
    """
    if not isinstance(value, str) or not is_authority_id(value):
        text = value if isinstance(value, str) else repr(value)
        foreign = next(((i, c) for i, c in enumerate(text) if ord(c) > 0x7F), None)
        if foreign is not None:
            index, char = foreign
            name = unicodedata.name(char, "an unnamed character")
            detail = (
                f"character {index + 1} is {name} (U+{ord(char):04X}), not an ASCII letter: "
                "look-alike letters from other scripts are refused"
            )
        elif AUTHORITY_ID_RE.match(text):
            detail = f"{text[:2]} is not an EEA country code"
        else:
            detail = (
                "expected an EEA country code, a hyphen and 1-40 upper-case ASCII letters, "
                "digits or inner hyphens (e.g. NO-HELSEDIR)"
            )
        raise AuthorityIdMalformed(f"authority id {_show(text)} is malformed: {detail}")
    if node_id is not None and value[:2] != node_id:
        raise AuthorityCountryMismatch(
            f"authority {value} belongs to country {value[:2]}, not to this node ({node_id})"
        )
    return value


def _clean_text(value: str, what: str, limit: int = MAX_TEXT) -> str:
    """``value`` with runs of white space collapsed; refused when empty, too long or odd."""
    text = " ".join(value.split())
    if not text:
        raise AuthorityFieldInvalid(f"{what} is empty")
    if len(text) > limit:
        raise AuthorityFieldInvalid(f"{what} is longer than {limit} characters")
    # Control, format (bidi overrides, zero-width), private-use and unassigned
    # characters have no place in a name and are a spoofing lever.
    bad = next((c for c in text if unicodedata.category(c).startswith("C")), None)
    if bad is not None:
        raise AuthorityFieldInvalid(
            f"{what} contains the character U+{ord(bad):04X} "
            f"({unicodedata.category(bad)}), which is not allowed"
        )
    return text


def check_region(region: str, country: str) -> str:
    """A NUTS region code of ``country`` (e.g. PT17 for Portugal), or AUTHORITY_FIELD_INVALID."""
    if not REGION_RE.match(region):
        raise AuthorityFieldInvalid(
            f"region {_show(region)} is not a NUTS code (country code and 1-3 upper-case "
            "letters or digits, e.g. PT17, NO08)"
        )
    if region[:2] != country:
        raise AuthorityFieldInvalid(f"region {region} is not a region of {country}")
    return region


def _check_names(names: Sequence[LocalizedText]) -> tuple[LocalizedText, ...]:
    if not names:
        raise AuthorityFieldInvalid("an authority needs at least one name")
    if len(names) > MAX_NAMES:
        raise AuthorityFieldInvalid(f"at most {MAX_NAMES} names (one per language)")
    seen: set[str] = set()
    result = []
    for name in names:
        check_language(name.lang)
        if name.lang in seen:
            raise AuthorityFieldInvalid(f"two names in language {name.lang}")
        seen.add(name.lang)
        result.append(LocalizedText(_clean_text(name.text, f"the {name.lang} name"), name.lang))
    return tuple(result)


def _check_address(address: Address, country: str) -> Address:
    if not address.lines:
        raise AuthorityFieldInvalid("the address needs at least one line")
    if len(address.lines) > MAX_ADDRESS_LINES:
        raise AuthorityFieldInvalid(f"the address has at most {MAX_ADDRESS_LINES} lines")
    lines = tuple(_clean_text(line, f"address line {i}") for i, line in enumerate(address.lines, 1))
    postal = None
    if address.postal_code is not None:
        postal = _clean_text(address.postal_code, "the postal code", MAX_POSTAL_CODE)
    city = _clean_text(address.city, "the city")
    if address.country != country:
        raise AuthorityFieldInvalid(
            f"the address country {_show(address.country)} is not the authority's country {country}"
        )
    return Address(lines=lines, city=city, country=country, postal_code=postal)


def _dedupe(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _check_competences(
    competences: Sequence[Competence], catalogue: Catalogue
) -> tuple[Competence, ...]:
    if not competences:
        raise AuthorityFieldInvalid("an authority needs at least one competence (legislation area)")
    if len(competences) > MAX_COMPETENCES:
        raise AuthorityFieldInvalid(f"at most {MAX_COMPETENCES} competences")
    areas: set[str] = set()
    result = []
    for competence in competences:
        area = catalogue.area(competence.legislation_area).code  # CATALOGUE_CODE_UNKNOWN
        if area in areas:
            raise AuthorityCompetenceInvalid(f"legislation area {area} is listed twice")
        areas.add(area)
        question_sets = _dedupe(competence.question_sets)
        professions = _dedupe(competence.professions)
        if max(len(question_sets), len(professions)) > MAX_CODES_PER_COMPETENCE:
            raise AuthorityFieldInvalid(
                f"at most {MAX_CODES_PER_COMPETENCE} question sets and professions per area"
            )
        for code in question_sets:
            question_set = catalogue.question_set(code)  # CATALOGUE_CODE_UNKNOWN
            if question_set.area != area:
                raise AuthorityCompetenceInvalid(
                    f"question set {code} belongs to legislation area {question_set.area}, "
                    f"not {area}"
                )
        for code in professions:
            catalogue.profession(code)  # CATALOGUE_CODE_UNKNOWN
            if not any(s.area == area for s in catalogue.question_sets_for_profession(code)):
                raise AuthorityCompetenceInvalid(
                    f"profession {code} has no question set in legislation area {area}"
                )
        result.append(Competence(area, question_sets, professions))
    return tuple(result)


def _check_languages(languages: Sequence[str]) -> tuple[str, ...]:
    if not languages:
        raise AuthorityFieldInvalid("an authority needs at least one working language")
    for lang in languages:
        check_language(lang)  # CATALOGUE_LANGUAGE_UNKNOWN
    if len(set(languages)) != len(languages):
        raise AuthorityFieldInvalid("a working language is listed twice")
    return tuple(languages)


def validate_authority(
    entry: AuthorityEntry, *, node_id: str, catalogue: Catalogue
) -> AuthorityEntry:
    """Check an authority an operator registers at node ``node_id``; return it normalised.

    Normalised: white space in texts collapsed, repeated question-set and
    profession codes dropped. Refusals: AUTHORITY_ID_MALFORMED,
    AUTHORITY_COUNTRY_MISMATCH, AUTHORITY_FIELD_INVALID (names, address,
    region, languages), CATALOGUE_CODE_UNKNOWN (area, question set or
    profession not in ``catalogue``), CATALOGUE_LANGUAGE_UNKNOWN (not one of
    the 27 languages) and AUTHORITY_COMPETENCE_INVALID. Certificates are not
    checked here (see :func:`bind_certificates`).
    """
    authority_id = check_authority_id(entry.authority_id, node_id)
    country = authority_id[:2]
    return replace(
        entry,
        names=_check_names(entry.names),
        address=_check_address(entry.address, country),
        region=None if entry.region is None else check_region(entry.region, country),
        competences=_check_competences(entry.competences, catalogue),
        working_languages=_check_languages(entry.working_languages),
    )


def bind_certificates(
    entry: AuthorityEntry, certificates: Sequence[x509.Certificate]
) -> AuthorityEntry:
    """``entry`` listing ``certificates`` (DER), the ones peers pin for its signatures.

    Each must be bound to the authority (subjectAltName
    ``urn:imi-gateway:authority:<ID>``), else DIRECTORY_CERTIFICATE_INVALID;
    none at all is AUTHORITY_CERTIFICATE_MISSING. During a rollover more than
    :data:`MAX_CERTIFICATES` may be bound: the newest ones (latest
    not-before) are listed. The order is the newest first.
    """
    if not certificates:
        raise AuthorityCertificateMissing(
            f"no national-system certificate is bound to {entry.authority_id}"
        )
    for cert in certificates:
        if certs_mod.authority_id_of(cert) != entry.authority_id:
            raise DirectoryCertificateInvalid(
                f"a certificate listed for {entry.authority_id} is not bound to it "
                f"(sha256 {certs_mod.fingerprint(cert)})"
            )
    newest = sorted(
        certificates, key=lambda c: (c.not_valid_before_utc, certs_mod.fingerprint(c)), reverse=True
    )[:MAX_CERTIFICATES]
    ders = tuple(c.public_bytes(serialization.Encoding.DER) for c in newest)
    return replace(entry, certificates=ders)


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
