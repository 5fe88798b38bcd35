"""The dispute and coordinator documents as frozen dataclasses (see coordination.xsd).

* :class:`Dispute`: signed by a party's national system; the exchange waits
  for the coordinators (DISPUTED).
* :class:`CoordinatorReminder`, :class:`CoordinatorForward`,
  :class:`MediationNote`, :class:`DisputeSettled`, :class:`DisputeEnded`:
  signed by a coordinator, whose id the ``coordinator`` field names.

They follow the shape of ``gateway.core.documents`` (import them from there):
a :class:`~gateway.core.docparts.Header`, ``write_body`` and ``read_body``.
Free text (notes) stays out of ``repr``. Sans-IO; never logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from lxml import etree

from gateway.core.docparts import Header
from gateway.core.docxml import (
    LocalizedText,
    child,
    localized,
    opt_localized,
    sub,
    sub_localized,
    text,
)
from gateway.core.schemas import DocumentType

__all__ = [
    "CoordinatorForward",
    "CoordinatorReminder",
    "Dispute",
    "DisputeEnded",
    "DisputeSettled",
    "MediationNote",
]


@dataclass(frozen=True)
class Dispute:
    """A party disputes the exchange; reason: QUESTION_NOT_JUSTIFIED, INFORMATION_NOT_NEEDED,
    ANSWER_INCOMPLETE or OTHER."""

    document_type: ClassVar[str] = DocumentType.DISPUTE
    header: Header
    reason: str
    note: LocalizedText | None = field(default=None, repr=False)

    def write_body(self, root: etree._Element) -> None:
        sub(root, "Reason", self.reason)
        sub_localized(root, "Note", self.note)

    @classmethod
    def read_body(cls, root: etree._Element, header: Header) -> Dispute:
        return cls(header=header, reason=text(root, "Reason"), note=opt_localized(root, "Note"))


@dataclass(frozen=True)
class CoordinatorReminder:
    """A coordinator reminds the side the exchange waits for (tracked; no state change)."""

    document_type: ClassVar[str] = DocumentType.COORDINATOR_REMINDER
    header: Header
    coordinator: str
    note: LocalizedText | None = field(default=None, repr=False)

    def write_body(self, root: etree._Element) -> None:
        sub(root, "Coordinator", self.coordinator)
        sub_localized(root, "Note", self.note)

    @classmethod
    def read_body(cls, root: etree._Element, header: Header) -> CoordinatorReminder:
        return cls(
            header=header, coordinator=text(root, "Coordinator"), note=opt_localized(root, "Note")
        )


@dataclass(frozen=True)
class CoordinatorForward:
    """The responder's coordinator hands the request on to ``forward_to`` (same country)."""

    document_type: ClassVar[str] = DocumentType.COORDINATOR_FORWARD
    header: Header
    coordinator: str
    forward_to: str
    note: LocalizedText | None = field(default=None, repr=False)

    def write_body(self, root: etree._Element) -> None:
        sub(root, "Coordinator", self.coordinator)
        sub(root, "ForwardTo", self.forward_to)
        sub_localized(root, "Note", self.note)

    @classmethod
    def read_body(cls, root: etree._Element, header: Header) -> CoordinatorForward:
        return cls(
            header=header,
            coordinator=text(root, "Coordinator"),
            forward_to=text(root, "ForwardTo"),
            note=opt_localized(root, "Note"),
        )


@dataclass(frozen=True)
class MediationNote:
    """A coordinator's note on the exchange, for the counterpart's coordinator."""

    document_type: ClassVar[str] = DocumentType.MEDIATION_NOTE
    header: Header
    coordinator: str
    note: LocalizedText = field(repr=False)

    def write_body(self, root: etree._Element) -> None:
        sub(root, "Coordinator", self.coordinator)
        sub_localized(root, "Note", self.note)

    @classmethod
    def read_body(cls, root: etree._Element, header: Header) -> MediationNote:
        return cls(
            header=header,
            coordinator=text(root, "Coordinator"),
            note=localized(child(root, "Note")),
        )


@dataclass(frozen=True)
class DisputeSettled:
    """The coordinators' outcome: the exchange continues in the state before the dispute."""

    document_type: ClassVar[str] = DocumentType.DISPUTE_SETTLED
    header: Header
    coordinator: str
    decision: str
    note: LocalizedText | None = field(default=None, repr=False)

    def write_body(self, root: etree._Element) -> None:
        sub(root, "Coordinator", self.coordinator)
        sub(root, "Decision", self.decision)
        sub_localized(root, "Note", self.note)

    @classmethod
    def read_body(cls, root: etree._Element, header: Header) -> DisputeSettled:
        return cls(
            header=header,
            coordinator=text(root, "Coordinator"),
            decision=text(root, "Decision"),
            note=opt_localized(root, "Note"),
        )


@dataclass(frozen=True)
class DisputeEnded:
    """The coordinators' outcome: the exchange ends (terminal; retention applies)."""

    document_type: ClassVar[str] = DocumentType.DISPUTE_ENDED
    header: Header
    coordinator: str
    decision: str
    note: LocalizedText | None = field(default=None, repr=False)

    def write_body(self, root: etree._Element) -> None:
        sub(root, "Coordinator", self.coordinator)
        sub(root, "Decision", self.decision)
        sub_localized(root, "Note", self.note)

    @classmethod
    def read_body(cls, root: etree._Element, header: Header) -> DisputeEnded:
        return cls(
            header=header,
            coordinator=text(root, "Coordinator"),
            decision=text(root, "Decision"),
            note=opt_localized(root, "Note"),
        )
