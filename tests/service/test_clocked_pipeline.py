"""The Pipeline on its own: ``task.Clock``, a file-backed SQLite database run inline.

No real reactor, no threads, no sleeps (set-up: :mod:`tests.service.clocked`).
Node NO (NO-HELSEDIR registered) and its peer PT (PT-OMD) are node
directories made as an operator would; documents are signed with the
authorities' national-system keys and envelopes with PT's node signing key,
as PT's sender would. The coroutines are driven with ``Deferred.fromCoroutine``
and ``fired``: every step completes inline.
"""

from __future__ import annotations

import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred

from gateway.core.admission import OutsideReplayWindow
from gateway.core.catalogue import load_catalogues
from gateway.core.certs import TrustStore, load_pem_certificate, load_pem_private_key
from gateway.core.documents import to_xml
from gateway.core.docxml import sha256_hex
from gateway.core.envelopes import (
    Payload,
    Receipt,
    ReceiptItem,
    ReceiptStatus,
    build_envelope,
    read_receipt,
)
from gateway.core.signing import Signer, verify
from gateway.keystore import NationalIssued, load_node_keys
from gateway.service.pipeline import PayloadRefused, Pipeline
from gateway.service.trust import NodeTrustStores
from gateway.storage.tables import deliveries, outbox
from gateway.testbed import doctor_request
from tests.service.bed import row_counts
from tests.service.clocked import ClockedNode, clocked_node, fired
from tests.storage.conftest import NODE, PEER, T0
from tests.test_directory_store import bind, link, make_node, signer

HELSEDIR, OMD = "NO-HELSEDIR", "PT-OMD"
WINDOW = 300.0


def national(issued: NationalIssued) -> Signer:
    """The signer of the national system ``issued`` was made for."""
    key = load_pem_private_key(issued.key_path.read_bytes())
    return Signer(key, load_pem_certificate(issued.certificate_path.read_bytes()))


@dataclass
class Bed:
    node: ClockedNode
    pipeline: Pipeline
    helsedir: Signer
    omd: Signer
    pt: Signer
    node_trust: TrustStore
    queued: list[str] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)

    def now(self) -> datetime:
        return self.node.runtime.clock.now()

    def run(self, coroutine: Coroutine[Any, Any, bytes]) -> bytes:
        result: bytes = fired(Deferred.fromCoroutine(coroutine))
        return result

    def receipt(self, body: bytes) -> Receipt:
        """The receipt ``body``, verified against NO's pinned node signing certificate."""
        return read_receipt(verify(body, self.node_trust, now=self.now()).root)

    def request(self, sender: str, receiver: str, again: Payload | None = None) -> Payload:
        """A Request (its id and bytes) signed by ``sender``'s national system.

        With ``again``: a second Request, another document in the exchange of ``again``.
        """
        exchange_id = again.message_id.removesuffix("-1") if again else f"IMI-{uuid.uuid4().hex}"
        doc = doctor_request(exchange_id, sender, receiver, T0)
        if again:
            doc = replace(doc, header=replace(doc.header, document_id=f"{exchange_id}-2"))
        signed = (self.helsedir if sender == HELSEDIR else self.omd).sign(to_xml(doc))
        return Payload(doc.header.document_id, signed)

    def envelope(self, *payloads: Payload) -> tuple[str, bytes]:
        """(envelope id, bytes) of an envelope from PT to NO, signed as PT's sender signs it."""
        envelope_id = f"env-{uuid.uuid4()}"
        return envelope_id, self.pt.sign(
            build_envelope(PEER, NODE, envelope_id, self.now(), payloads)
        )

    def rows(self, table: Any, *columns: str) -> list[tuple[Any, ...]]:
        def read(conn: Any) -> list[tuple[Any, ...]]:
            query = table.select().order_by(*table.primary_key.columns)
            return [tuple(getattr(r, c) for c in columns) for r in conn.execute(query)]

        result: list[tuple[Any, ...]] = self.node.db.run_txn_sync(read)
        return result

    def counts(self) -> dict[str, int]:
        result: dict[str, int] = fired(Deferred.fromCoroutine(row_counts(self.node.db)))
        return result


@pytest.fixture
def bed(tmp_path: Path) -> Iterator[Bed]:
    node = clocked_node(tmp_path)  # NO's node directory is tmp_path / "no"
    no, pt = tmp_path / NODE.lower(), make_node(tmp_path, PEER, now=T0)
    link(no, pt, now=T0)
    helsedir, omd = national(bind(no, HELSEDIR, now=T0)), national(bind(pt, OMD, now=T0))
    queued: list[str] = []
    delivered: list[str] = []
    pipeline = Pipeline(
        node.runtime,
        trust=NodeTrustStores(no),
        replay_window_seconds=WINDOW,
        catalogues=load_catalogues(),
        on_queued=queued.append,
        on_delivery=delivered.append,
    )
    trust = TrustStore(pinned=(load_node_keys(no).signing.certificate,))
    yield Bed(node, pipeline, helsedir, omd, signer(pt), trust, queued, delivered)
    node.stop()


def test_a_signed_submission_is_stored_queued_for_its_peer_and_answered_with_a_signed_receipt(
    bed: Bed,
) -> None:
    request = bed.request(HELSEDIR, OMD)
    receipt = bed.receipt(bed.run(bed.pipeline.submit(HELSEDIR, request.data)))
    assert (receipt.issuer_node, receipt.recipient) == (NODE, HELSEDIR)
    assert receipt.items == (
        ReceiptItem(request.message_id, sha256_hex(request.data), ReceiptStatus.ACCEPTED),
    )
    assert bed.rows(outbox, "peer_node", "message_id", "state") == [
        (PEER, request.message_id, "pending")
    ]
    assert bed.queued == [PEER]


def test_a_duplicate_submission_gets_the_original_receipt_and_stores_nothing_new(bed: Bed) -> None:
    request = bed.request(HELSEDIR, OMD)
    first = bed.run(bed.pipeline.submit(HELSEDIR, request.data))
    before = bed.counts()
    bed.node.clock.advance(60)
    assert bed.run(bed.pipeline.submit(HELSEDIR, request.data)) == first
    assert bed.counts() == before
    assert bed.queued == [PEER]


def test_a_submission_created_outside_the_replay_window_is_refused_with_its_code(
    bed: Bed,
) -> None:
    request = bed.request(HELSEDIR, OMD)
    bed.node.clock.advance(WINDOW + 1)
    before = bed.counts()
    with pytest.raises(OutsideReplayWindow) as refused:
        bed.run(bed.pipeline.submit(HELSEDIR, request.data))
    assert refused.value.code == "CREATION_TIME_OUT_OF_WINDOW"
    assert bed.counts() == before
    assert bed.queued == []


def test_an_envelope_from_a_peer_is_stored_delivered_and_answered_with_a_signed_receipt(
    bed: Bed,
) -> None:
    request = bed.request(OMD, HELSEDIR)
    envelope_id, envelope = bed.envelope(request)
    receipt = bed.receipt(bed.run(bed.pipeline.receive_envelope(PEER, envelope)))
    assert (receipt.issuer_node, receipt.recipient, receipt.envelope_id) == (
        NODE,
        PEER,
        envelope_id,
    )
    assert receipt.items == (
        ReceiptItem(request.message_id, sha256_hex(request.data), ReceiptStatus.ACCEPTED),
    )
    assert bed.rows(deliveries, "authority_id", "message_id") == [(HELSEDIR, request.message_id)]
    assert bed.delivered == [HELSEDIR]


@pytest.mark.parametrize(
    ("refusable", "cause"),
    [
        # Refused at admission: the document is addressed to another node's authority.
        (lambda bed, good: bed.request(OMD, "EE-TA"), "RECEIVER_NOT_AT_NODE"),
        # Refused by the storing transaction: a second Request in the exchange of the first.
        (lambda bed, good: bed.request(OMD, HELSEDIR, good), "EXCHANGE_STATE_CONFLICT"),
    ],
    ids=["at-admission", "at-storing"],
)
def test_an_envelope_with_a_refusable_document_is_refused_naming_it_and_stores_nothing_of_it(
    bed: Bed, refusable: Any, cause: str
) -> None:
    good = bed.request(OMD, HELSEDIR)
    bad = refusable(bed, good)
    before = bed.counts()
    with pytest.raises(PayloadRefused) as refused:
        bed.run(bed.pipeline.receive_envelope(PEER, bed.envelope(good, bad)[1]))
    assert (refused.value.code, refused.value.message_id) == ("PAYLOAD_REFUSED", bad.message_id)
    assert refused.value.cause.code == cause
    assert bed.counts() == before
    assert bed.delivered == []
