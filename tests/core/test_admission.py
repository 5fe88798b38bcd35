"""Admission decisions on submissions, envelopes and payloads (sans-IO, real signatures)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.core import pki
from gateway.core.admission import (
    OutsideReplayWindow,
    PeerMismatch,
    ReceiverNodeUnknown,
    ReceiverNotHere,
    SenderNotBound,
    SenderNotCaller,
    admit_envelope,
    admit_payload,
    admit_submission,
)
from gateway.core.catalogue import (
    CatalogueCodeUnknown,
    CatalogueVersionUnknown,
    load_catalogues,
)
from gateway.core.certs import TrustStore
from gateway.core.docparts import Header, Question
from gateway.core.documents import to_xml
from gateway.core.envelopes import Payload, build_envelope
from gateway.core.signing import Signer
from gateway.testbed import doctor_answer, doctor_request

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def world():
    ca_no = pki.make_ca("NO", now=NOW - timedelta(days=1))
    ca_pt = pki.make_ca("PT", now=NOW - timedelta(days=1))
    helsedir = pki.issue_national_system(ca_no, "NO-HELSEDIR", now=NOW - timedelta(days=1))
    other_no = pki.issue_national_system(ca_no, "NO-OTHER", now=NOW - timedelta(days=1))
    omd = pki.issue_national_system(ca_pt, "PT-OMD", now=NOW - timedelta(days=1))
    node_no = pki.issue_node_signing(ca_no, "NO", now=NOW - timedelta(days=1))
    node_pt = pki.issue_node_signing(ca_pt, "PT", now=NOW - timedelta(days=1))
    return {
        "national": TrustStore(pinned=(helsedir.certificate, other_no.certificate)),
        "pt_authorities": TrustStore(cas=(ca_pt.certificate,)),
        "pt_node": TrustStore(pinned=(node_pt.certificate,)),
        "helsedir": Signer(helsedir.key, helsedir.certificate),
        "other_no": Signer(other_no.key, other_no.certificate),
        "omd": Signer(omd.key, omd.certificate),
        "node_no": Signer(node_no.key, node_no.certificate),
        "node_pt": Signer(node_pt.key, node_pt.certificate),
    }


def _submit(world, data, *, caller="NO-HELSEDIR", now=NOW, catalogues=None):
    return admit_submission(
        data,
        caller=caller,
        node_id="NO",
        trust=world["national"],
        peers={"PT"},
        now=now,
        window_seconds=300,
        catalogues=catalogues,
    )


def _request(**changes):
    request = doctor_request("IMI-NO-T-1", "NO-HELSEDIR", "PT-OMD", NOW)
    if changes:
        request = replace(request, **changes)
    return request


def test_a_bound_submission_is_admitted_and_routed_to_the_receivers_node(world) -> None:
    signed = world["helsedir"].sign(to_xml(_request()))
    admitted = _submit(world, signed, catalogues=load_catalogues())
    assert admitted.peer_node == "PT"
    assert admitted.document_type == "Request"
    assert admitted.verified.data == signed


def test_a_document_naming_another_sender_than_its_certificate_is_refused(world) -> None:
    forged = _request(header=replace(_request().header, sender="NO-OTHER"))
    with pytest.raises(SenderNotBound):
        _submit(world, world["helsedir"].sign(to_xml(forged)), caller="NO-OTHER")


def test_a_national_system_cannot_submit_another_authoritys_document(world) -> None:
    signed = world["helsedir"].sign(to_xml(_request()))
    with pytest.raises(SenderNotCaller):
        _submit(world, signed, caller="NO-OTHER")


def test_a_receiver_in_a_country_without_peer_node_is_refused(world) -> None:
    request = _request(header=replace(_request().header, receiver="DE-AERZTEKAMMER"))
    with pytest.raises(ReceiverNodeUnknown):
        _submit(world, world["helsedir"].sign(to_xml(request)))


@pytest.mark.parametrize("skew", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_creation_time_outside_the_window_is_refused(world, skew) -> None:
    signed = world["helsedir"].sign(to_xml(_request()))
    with pytest.raises(OutsideReplayWindow):
        _submit(world, signed, now=NOW + skew)


def test_unknown_catalogue_version_and_codes_are_refused(world) -> None:
    catalogues = load_catalogues()
    header = replace(_request().header, catalogue_version="1999.1")
    with pytest.raises(CatalogueVersionUnknown):
        _submit(
            world, world["helsedir"].sign(to_xml(_request(header=header))), catalogues=catalogues
        )
    questions = (replace(_request().questions[0], code="PQD-DOCTOR-999"),)
    with pytest.raises(CatalogueCodeUnknown):
        _submit(
            world,
            world["helsedir"].sign(to_xml(_request(questions=questions))),
            catalogues=catalogues,
        )


def test_a_question_set_of_another_area_is_refused(world) -> None:
    wrong_area = _request(
        question_set="SD-ESTABLISHMENT", questions=(Question("SD-ESTABLISHMENT-001"),)
    )
    with pytest.raises(CatalogueCodeUnknown):
        _submit(world, world["helsedir"].sign(to_xml(wrong_area)), catalogues=load_catalogues())


def test_an_answer_with_an_unknown_option_is_refused(world) -> None:
    answer = doctor_answer(doctor_request("IMI-PT-T-1", "PT-OMD", "NO-HELSEDIR", NOW), NOW)
    bad = replace(answer, replies=(replace(answer.replies[0], options=("MAYBE",)),))
    header = Header(
        "PT-OMD:IMI-PT-T-1", "NO-HELSEDIR:IMI-PT-T-1-3", "NO-HELSEDIR", "PT-OMD", NOW, "2026.1", "x"
    )
    with pytest.raises(CatalogueCodeUnknown):
        _submit(
            world,
            world["helsedir"].sign(to_xml(replace(bad, header=header))),
            catalogues=load_catalogues(),
        )


def _envelope(world, signer, sender="PT", receiver="NO", created=NOW, payloads=()):
    root = build_envelope(sender, receiver, "env-1", created, list(payloads))
    return world[signer].sign(root)


def _inbound(world):
    request = doctor_request("IMI-PT-T-2", "PT-OMD", "NO-HELSEDIR", NOW)
    return request, Payload(request.header.document_id, world["omd"].sign(to_xml(request)))


def test_an_envelope_from_the_tls_peer_is_admitted(world) -> None:
    _, payload = _inbound(world)
    verified, envelope = admit_envelope(
        _envelope(world, "node_pt", payloads=[payload]),
        tls_peer="PT",
        node_id="NO",
        trust=world["pt_node"],
        now=NOW,
        window_seconds=300,
    )
    assert envelope.payloads == (payload,)
    assert verified.node_id == "PT"


def test_an_envelope_whose_signer_is_not_the_tls_peer_is_refused(world) -> None:
    _, payload = _inbound(world)
    data = _envelope(world, "node_pt", payloads=[payload])
    with pytest.raises(PeerMismatch):
        admit_envelope(
            data, tls_peer="DE", node_id="NO", trust=world["pt_node"], now=NOW, window_seconds=300
        )


def test_an_envelope_for_another_node_or_too_old_is_refused(world) -> None:
    _, payload = _inbound(world)
    with pytest.raises(ReceiverNotHere):
        admit_envelope(
            _envelope(world, "node_pt", receiver="SE", payloads=[payload]),
            tls_peer="PT",
            node_id="NO",
            trust=world["pt_node"],
            now=NOW,
            window_seconds=300,
        )
    with pytest.raises(OutsideReplayWindow):
        admit_envelope(
            _envelope(world, "node_pt", payloads=[payload]),
            tls_peer="PT",
            node_id="NO",
            trust=world["pt_node"],
            now=NOW + timedelta(hours=1),
            window_seconds=300,
        )


def test_a_payload_must_come_from_an_authority_of_the_sending_peer(world) -> None:
    request, payload = _inbound(world)
    admitted = admit_payload(
        payload, peer_node="PT", node_id="NO", trust=world["pt_authorities"], now=NOW
    )
    assert admitted.peer_node == "PT" and admitted.header == request.header
    with pytest.raises(SenderNotBound):
        admit_payload(payload, peer_node="SE", node_id="NO", trust=world["pt_authorities"], now=NOW)
    with pytest.raises(ReceiverNotHere):
        admit_payload(payload, peer_node="PT", node_id="SE", trust=world["pt_authorities"], now=NOW)
    mislabelled = Payload("another-id", payload.data)
    with pytest.raises(PeerMismatch):
        admit_payload(
            mislabelled, peer_node="PT", node_id="NO", trust=world["pt_authorities"], now=NOW
        )
