"""Access rules (sans-IO): whom the node exchanges with, who is competent, who reads personal data.

Three decisions, each a pure function on values the service layer feeds in
(docs/access.md explains them to operators and integrators):

* **peers and legislation areas** -- :class:`PeerAccess` (from the node's
  ``[access]`` settings): which peer nodes the node exchanges with, and in
  which legislation areas. A Request for a peer or area the node does not
  exchange with is refused before it is acknowledged, and again at the
  receiving node (PEER_AREA_NOT_ALLOWED).
* **competences** -- :func:`check_request_competences` and
  :func:`check_forward`: a Request (or a Forward) goes only to an authority
  whose published competences cover the exchange's question set, and a
  Request comes only from an authority whose competences cover it
  (AUTHORITY_NOT_COMPETENT, SENDER_NOT_COMPETENT). The directory consulted is
  the one the deciding node knows: its own published directory for its own
  authorities, a peer's cached directory for the peer's. An empty or unknown
  directory decides nothing (nothing is published yet: the rule of
  AUTHORITY_NOT_PUBLISHED); a directory that lists authorities but not this
  one means it is competent for nothing.
* **personal data** -- :func:`visibility`: an authority sees the personal
  data of an exchange (person concerned, free text, notes, attachments,
  renderings, machine translations) only while it is one of the exchange's
  two authorities -- the requester or the CURRENT responder. A former
  responder (it forwarded the request) keeps the metadata (tracking stages);
  anyone else is not told the exchange exists. Operators, coordinators and
  auditors have no authority identity on the API and see metadata only.

Error texts name codes and ids, never personal data.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from gateway.core.catalogue import Catalogue
from gateway.core.coordination import CoordinatorForward
from gateway.core.directory.document import AuthorityEntry
from gateway.core.documents import Forward, Request
from gateway.core.errors import AccessDenied, InvalidInput

__all__ = [
    "EVERY_AREA",
    "AuthorityNotCompetent",
    "Directory",
    "ForwardTargetInvalid",
    "PeerAccess",
    "PeerAreaNotAllowed",
    "PersonalDataWithheld",
    "SenderNotCompetent",
    "Visibility",
    "check_forward",
    "check_forward_target",
    "check_request_competences",
    "competent",
    "visibility",
]


class PeerAreaNotAllowed(AccessDenied):
    """This node does not exchange documents of this legislation area with that peer node (the node's [access] settings)."""

    code = "PEER_AREA_NOT_ALLOWED"


class AuthorityNotCompetent(AccessDenied):
    """The receiving authority (or the authority a Forward names) is not competent, by its published directory entry, for the exchange's question set."""

    code = "AUTHORITY_NOT_COMPETENT"


class SenderNotCompetent(AccessDenied):
    """The requesting authority is not competent, by its published directory entry, for the question set it asks."""

    code = "SENDER_NOT_COMPETENT"


class ForwardTargetInvalid(InvalidInput):
    """A Forward (or a coordinator's forward) must name another authority of the responder's own node, and only the responder's side forwards."""

    code = "FORWARD_TARGET_INVALID"


class PersonalDataWithheld(AccessDenied):
    """The authority is no longer party to the exchange (it forwarded it): its personal data is withheld."""

    code = "PERSONAL_DATA_WITHHELD"


#: In ``[access]``, the legislation areas entry that allows every area.
EVERY_AREA = "*"

#: Authorities of one directory by id (``PublishedDirectory.entries``, ``CachedDirectory.entries``).
Directory = Mapping[str, AuthorityEntry]


@dataclass(frozen=True)
class PeerAccess:
    """Which peer nodes this node exchanges with, and in which legislation areas.

    ``areas`` maps a peer node id to its allowed areas (``"*"``: every area).
    ``None`` (the default, no ``[access]`` peers configured): every configured
    peer, every area -- the behaviour before access rules existed. Once any
    peer is listed, a peer that is not listed is allowed nothing.
    """

    areas: Mapping[str, frozenset[str]] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.areas is not None and not isinstance(self.areas, MappingProxyType):
            object.__setattr__(
                self, "areas", MappingProxyType({k: frozenset(v) for k, v in self.areas.items()})
            )

    def allows(self, peer: str, area: str) -> bool:
        if self.areas is None:
            return True
        allowed = self.areas.get(peer, frozenset())
        return EVERY_AREA in allowed or area in allowed

    def check(self, peer: str, area: str) -> None:
        """Raise PEER_AREA_NOT_ALLOWED unless this node exchanges ``area`` with ``peer``."""
        if not self.allows(peer, area):
            raise PeerAreaNotAllowed(
                f"this node does not exchange legislation area {area} with node {peer}"
            )


#: Every peer, every area.
EVERYTHING = PeerAccess()


def competent(
    entry: AuthorityEntry, area: str, question_set: str, catalogue: Catalogue | None
) -> bool:
    """Whether ``entry``'s competences cover ``question_set`` of legislation ``area``.

    A competence of the area with no question set and no profession covers
    the whole area; otherwise the question set must be listed, or be a
    question set of a listed profession (read from ``catalogue``).
    """
    for competence in entry.competences:
        if competence.legislation_area != area:
            continue
        if not competence.question_sets and not competence.professions:
            return True
        if question_set in competence.question_sets:
            return True
        if catalogue is not None:
            for profession in competence.professions:
                sets = catalogue.question_sets_for_profession(profession)
                if any(s.code == question_set for s in sets):
                    return True
    return False


def _covered(
    directory: Directory | None,
    authority: str,
    area: str,
    question_set: str,
    catalogue: Catalogue | None,
) -> bool:
    if not directory:  # unknown here, or nothing published yet: nothing to decide from
        return True
    entry = directory.get(authority)
    return entry is not None and competent(entry, area, question_set, catalogue)


def check_request_competences(
    request: Request,
    *,
    sender_directory: Directory | None,
    receiver_directory: Directory | None,
    catalogue: Catalogue | None,
) -> None:
    """Refuse a Request to (or from) an authority not competent for its question set."""
    header = request.header
    area, question_set = request.legislation_area, request.question_set
    if not _covered(receiver_directory, header.receiver, area, question_set, catalogue):
        raise AuthorityNotCompetent(
            f"{header.receiver} is not competent for question set {question_set}"
        )
    if not _covered(sender_directory, header.sender, area, question_set, catalogue):
        raise SenderNotCompetent(
            f"{header.sender} is not competent for question set {question_set}"
        )


def check_forward_target(forward: Forward | CoordinatorForward) -> None:
    """A Forward hands the request to another authority of the forwarding authority's node."""
    target, sender = forward.forward_to, forward.header.sender
    if target[:2] != sender[:2] or target in (sender, forward.header.receiver):
        raise ForwardTargetInvalid("ForwardTo must be another authority of the sender's node")


def check_forward(
    forward: Forward | CoordinatorForward,
    *,
    area: str,
    question_set: str,
    target_directory: Directory | None,
    catalogue: Catalogue | None,
) -> None:
    """Refuse a Forward to an authority not competent for the exchange's question set.

    ``area`` and ``question_set`` are the stored exchange's (a Forward does
    not repeat them); ``target_directory`` is the directory of the forwarding
    authority's node as the deciding node knows it.
    """
    check_forward_target(forward)
    if not _covered(target_directory, forward.forward_to, area, question_set, catalogue):
        raise AuthorityNotCompetent(
            f"{forward.forward_to} is not competent for question set {question_set}"
        )


class Visibility(StrEnum):
    """What an authority may read of an exchange."""

    PERSONAL_DATA = "personal_data"  # party now: metadata and personal data
    METADATA = "metadata"  # a former responder: tracking stages only
    NONE = "none"  # not involved: answered as for an unknown exchange


def visibility(
    authority: str, *, requester: str, responder: str, former_responders: Collection[str] = ()
) -> Visibility:
    """What ``authority`` may read of an exchange between ``requester`` and ``responder``.

    ``responder`` is the CURRENT responder (after a Forward, the authority
    named in ForwardTo); ``former_responders`` are the authorities that
    forwarded the exchange.
    """
    if authority in (requester, responder):
        return Visibility.PERSONAL_DATA
    if authority in former_responders:
        return Visibility.METADATA
    return Visibility.NONE
