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

from gateway.core.directory.errors import (
    AuthorityCertificateMissing,
    AuthorityCompetenceInvalid,
    AuthorityCountryMismatch,
    AuthorityExists,
    AuthorityFieldInvalid,
    AuthorityIdMalformed,
    AuthorityUnknown,
    DirectoryBaseMismatch,
    DirectoryCertificateInvalid,
    DirectoryNodeMismatch,
    DirectoryNotPublished,
    DirectoryStale,
)
from gateway.core.directory.rules import (
    HISTORY_LIMIT,
    MAX_CERTIFICATES,
    bind_certificates,
    check_authority_id,
    check_region,
    validate_authority,
)
from gateway.core.directory.versions import (
    CachedDirectory,
    Change,
    PublishedDirectory,
    UpdateResult,
    apply_update,
    check_peer_certificates,
    entry_certificates,
)

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
