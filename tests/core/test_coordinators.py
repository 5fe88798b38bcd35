"""Coordinators: scope, the responsible coordinator, and who may sign which document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.core import pki
from gateway.core.certs import TrustStore
from gateway.core.coordinators import (
    Coordinator,
    CoordinatorInvalid,
    CoordinatorNotBound,
    ForwardTargetInvalid,
    NodeDocumentRefused,
    Scope,
    admit_coordinator_submission,
    admit_node_document,
    admit_peer_special,
    coordinator_copies,
    coordinator_id_of,
    responsible_coordinator,
)
from gateway.core.docparts import Header
from gateway.core.documents import (
    CoordinatorForward,
    Escalation,
    MediationNote,
    Reminder,
    Withdrawal,
    to_xml,
)
from gateway.core.docxml import LocalizedText
from gateway.core.envelopes import Payload
from gateway.core.signing import Signer

NOW = datetime.now(UTC)
NATIONAL = Coordinator("NO-KOORD", "Nasjonal", Scope.NATIONAL)
VESTLAND = Coordinator("NO-KOORD-VEST", "Vestland", Scope.REGIONS, ("Vestland",))
HELSEDIR = Coordinator("NO-KOORD-HDIR", "Helsedir", Scope.AUTHORITIES, ("NO-HELSEDIR",))
NOTE = LocalizedText("Sjå artikkel 56.", "nn")


def test_the_most_specific_coordinator_is_responsible() -> None:
    everyone = [NATIONAL, VESTLAND, HELSEDIR]
    assert responsible_coordinator(everyone, "NO-HELSEDIR", "Vestland") is HELSEDIR
    assert responsible_coordinator(everyone, "NO-BERGEN", "Vestland") is VESTLAND
    assert responsible_coordinator(everyone, "NO-TROMSO", "Troms") is NATIONAL
    assert responsible_coordinator(everyone, "NO-TROMSO", None) is NATIONAL
    assert responsible_coordinator([VESTLAND], "NO-TROMSO", None) is None
    assert responsible_coordinator(everyone, "PT-OMD", None) is None  # another country


@pytest.mark.parametrize(
    "make",
    [
        lambda: Coordinator("KOORD", "x", Scope.NATIONAL),
        lambda: Coordinator("NO-K", " ", Scope.NATIONAL),
        lambda: Coordinator("NO-K", "x", Scope.NATIONAL, ("NO-A",)),
        lambda: Coordinator("NO-K", "x", Scope.REGIONS, ()),
        lambda: Coordinator("NO-K", "x", Scope.AUTHORITIES, ("PT-OMD",)),
    ],
)
def test_malformed_registrations_are_refused(make: object) -> None:
    with pytest.raises(CoordinatorInvalid):
        make()  # type: ignore[operator]


def _header(document_id: str, sender: str = "NO-HELSEDIR", receiver: str = "PT-OMD") -> Header:
    return Header("NO-HELSEDIR:2026-1", document_id, sender, receiver, NOW)


def test_copies_go_to_the_responsible_coordinator_never_back_to_the_signer() -> None:
    everyone = [NATIONAL, HELSEDIR]
    escalation = Escalation(_header("NO-HELSEDIR:e"), "ANSWER_OVERDUE", coordinator="NO-KOORD-HDIR")
    assert coordinator_copies(escalation, "NO-HELSEDIR", everyone, None) == ("NO-KOORD-HDIR",)
    note = MediationNote(_header("NO-KOORD-HDIR:n"), "NO-KOORD-HDIR", NOTE)
    assert coordinator_copies(note, "NO-HELSEDIR", everyone, None) == ()
    withdrawal = Withdrawal(_header("NO-HELSEDIR:w"))
    assert coordinator_copies(withdrawal, "NO-HELSEDIR", everyone, None) == ()


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.make_ca("NO", now=NOW - timedelta(hours=1))


def test_a_coordinator_certificate_carries_the_mark(ca: pki.Issued) -> None:
    coordinator = pki.issue_coordinator(ca, "NO-KOORD", now=NOW)
    national = pki.issue_national_system(ca, "NO-HELSEDIR", now=NOW)
    assert coordinator_id_of(coordinator.certificate) == "NO-KOORD"
    assert coordinator_id_of(national.certificate) is None


def _admit(ca: pki.Issued, issued: pki.Issued, document: object, caller: str) -> object:
    data = Signer(issued.key, issued.certificate).sign(to_xml(document))  # type: ignore[arg-type]
    return admit_coordinator_submission(
        data,
        caller=caller,
        node_id="NO",
        trust=TrustStore(cas=(ca.certificate,)),
        peers={"PT"},
        now=NOW,
        window_seconds=300,
    )


def test_only_the_named_coordinator_signs_its_documents(ca: pki.Issued) -> None:
    koord = pki.issue_coordinator(ca, "NO-KOORD", now=NOW)
    national = pki.issue_national_system(ca, "NO-HELSEDIR", now=NOW)
    note = MediationNote(_header("NO-KOORD:n1"), "NO-KOORD", NOTE)
    assert _admit(ca, koord, note, "NO-KOORD").peer_node == "PT"  # type: ignore[attr-defined]
    with pytest.raises(CoordinatorNotBound):
        _admit(ca, national, note, "NO-KOORD")  # an authority's certificate
    other = MediationNote(_header("NO-OTHER:n1"), "NO-OTHER", NOTE)
    with pytest.raises(CoordinatorNotBound):
        _admit(ca, koord, other, "NO-KOORD")  # names another coordinator
    foreign_id = MediationNote(_header("NO-HELSEDIR:n2"), "NO-KOORD", NOTE)
    with pytest.raises(CoordinatorNotBound):
        _admit(ca, koord, foreign_id, "NO-KOORD")  # DocumentId not its own
    abroad = CoordinatorForward(_header("NO-KOORD:f"), "NO-KOORD", "PT-ACSS")
    with pytest.raises(ForwardTargetInvalid):
        _admit(ca, koord, abroad, "NO-KOORD")


def test_a_node_signs_only_reminders_and_escalations_of_its_own_authorities(
    ca: pki.Issued,
) -> None:
    signing = pki.issue_node_signing(ca, "NO", now=NOW)
    signer = Signer(signing.key, signing.certificate)
    trust = TrustStore(pinned=(signing.certificate,))
    reminder = signer.sign(to_xml(Reminder(_header("NO-HELSEDIR:deadline-1"))))
    admitted = admit_node_document(
        reminder, node_id="NO", trust=trust, peers={"PT"}, now=NOW, window_seconds=300
    )
    assert admitted.document_type == "Reminder"
    withdrawal = signer.sign(to_xml(Withdrawal(_header("NO-HELSEDIR:w"))))
    with pytest.raises(NodeDocumentRefused):
        admit_node_document(
            withdrawal, node_id="NO", trust=trust, peers={"PT"}, now=NOW, window_seconds=300
        )
    # at the peer: the same reminder, verified against NO's pinned signing certificate
    payload = Payload("NO-HELSEDIR:deadline-1", reminder)
    got = admit_peer_special(
        payload,
        peer_node="NO",
        node_id="PT",
        trust=TrustStore(pinned=(signing.certificate,), cas=(ca.certificate,)),
        now=NOW,
    )
    assert got.header.sender == "NO-HELSEDIR"
