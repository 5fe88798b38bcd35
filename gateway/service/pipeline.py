"""The inbound pipeline: from bytes at an HTTP edge to committed rows and a signed receipt.

Two entry points, one shape (parse, verify, decide, store, answer):

* :meth:`Pipeline.submit`: a national system of this node submits a signed
  exchange document. Admission (signature, binding, schema, catalogue,
  routing) and the receipt signature run on the CPU pool; the message, its
  exchange, its outbox row and its tracking rows are committed in one
  transaction; only then is the signed receipt returned. A resubmission of
  the same bytes returns the original receipt, even once the document's
  creation time has left the replay window (a retry after an outage).
* :meth:`Pipeline.receive_envelope`: a peer node posts a node-signed
  envelope (verified against every peer's pinned signing certificate, so
  that a signer other than the TLS peer is named: PEER_MISMATCH). The envelope and every payload are admitted, the receipt is
  signed, and messages, deliveries, tracking and the receipt are committed in
  one transaction. A replayed envelope gets its original receipt and creates
  nothing; a document already received in another envelope is not stored or
  delivered twice.

A payload that is refused is reported in an Error document naming its
message id, so that the sending node can dead-letter that one document and
send the rest.

The audit log (docs/audit.md): the storing transactions record SUBMITTED,
RECEIVED and STATE_CHANGED, and the refusals they decide; a refusal before
any storing transaction (signature, binding, schema, replay window, ...)
gets its REFUSED entry in a small transaction of its own. The pipeline
computes each document's keyed digest (``runtime.audit_key``) for them.

Deadlines and coordinators: every stored document carries the exchange
metadata it sets (``gateway.core.deadlines.deadline_metadata``), and the
documents coordinators follow (escalations, disputes, coordinator documents)
are also delivered to the responsible coordinator of this node (``copies``).
:meth:`Pipeline.submit` takes another admission for this node's coordinators
and for the node's own deadline documents (``gateway.core.coordinators``); a
peer's node-signed or coordinator-signed documents are admitted there too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from twisted.logger import Logger

from gateway.core.access import EVERYTHING, Directory, PeerAccess, check_forward
from gateway.core.admission import (
    Admitted,
    OutsideReplayWindow,
    SenderNotBound,
    admit_envelope,
    admit_payload,
    admit_submission,
    country_of,
)
from gateway.core.audit import Event, node_actor, refusal_message
from gateway.core.catalogue import CatalogueRegistry
from gateway.core.certs import TrustStore
from gateway.core.coordination import CoordinatorForward
from gateway.core.coordinators import admit_peer_special, refuse_coordinator_as_authority
from gateway.core.deadlines import DeadlinePolicy, deadline_metadata
from gateway.core.directory import PublishedDirectory
from gateway.core.documents import ExchangeDocument, Forward, Request
from gateway.core.docxml import sha256_hex
from gateway.core.envelopes import Payload, ReceiptItem, ReceiptStatus, build_receipt
from gateway.core.errors import GatewayError, InvalidInput, InvalidSignature
from gateway.core.lifecycle import EXCHANGE_LIFECYCLE
from gateway.core.ns import DOC_NS
from gateway.core.xmlparse import parse_xml
from gateway.service.batching import Batcher
from gateway.service.runtime import Runtime
from gateway.service.trust import NodeTrustStores
from gateway.storage.audit import append_audit_txn
from gateway.storage.errors import DuplicateMessage, ExchangeNotFound
from gateway.storage.exchanges import exchange_txn
from gateway.storage.messages import (
    store_inbound_envelope_txn,
    stored_receipt_txn,
    submit_messages_txn,
)
from gateway.storage.model import (
    Accepted,
    ExchangeInfo,
    InboundEnvelope,
    InboundPayload,
    Refused,
    Submission,
)

log = Logger()

#: Another admission for :meth:`Pipeline.submit`: (body, now, window seconds) -> Admitted.
Admission = Callable[[bytes, datetime, float], Admitted]


class PayloadRefused(InvalidInput):
    """One document of an envelope was refused; the Error names its message id."""

    code = "PAYLOAD_REFUSED"

    def __init__(self, message_id: str, cause: GatewayError) -> None:
        super().__init__(f"document {message_id} refused: {cause.code}: {cause}")
        self.message_id = message_id
        self.cause = cause


class Pipeline:
    def __init__(
        self,
        runtime: Runtime,
        *,
        trust: NodeTrustStores,
        replay_window_seconds: float,
        catalogues: CatalogueRegistry | None,
        push_authorities: frozenset[str] = frozenset(),
        on_queued: Callable[[str], None] = lambda peer: None,
        on_delivery: Callable[[str], None] = lambda authority: None,
        on_received: Callable[[bytes, ExchangeDocument], None] = lambda body, document: None,
        published: Callable[[], PublishedDirectory] | None = None,
        peer_access: PeerAccess = EVERYTHING,
        peer_directories: Callable[[], Mapping[str, Directory]] | None = None,
        deadlines: DeadlinePolicy | None = None,
        copies: Callable[[ExchangeDocument, str], tuple[str, ...]] | None = None,
    ) -> None:
        self.node_id = runtime.node_id
        self._now = runtime.clock.now
        self._db = runtime.db
        self._cpu = runtime.cpu
        self._signer = runtime.signer
        self._sealer = runtime.sealer
        self._trust = trust
        self._all_peers: tuple[object, TrustStore] | None = None
        self._window = replay_window_seconds
        self._catalogues = catalogues
        self._metrics = runtime.metrics
        self._push = push_authorities
        self._on_queued = on_queued
        self._on_delivery = on_delivery
        self._on_received = on_received
        self._published = published
        self._published_ders: tuple[object, frozenset[bytes]] | None = None
        self._audit_key = runtime.audit_key
        self._peer_access = peer_access
        self._peer_directories = peer_directories
        self._deadlines = deadlines or DeadlinePolicy()
        self._copies = copies or (lambda document, authority: ())
        self._special: tuple[object, dict[str, TrustStore]] | None = None
        # Submissions that arrive while an admission batch runs on the CPU pool share
        # the next one (one hand-off each way per batch, not per document); those
        # admitted while a storing transaction runs share the next transaction.
        self._admissions = Batcher[_Admission, _Admitted | Exception](self._admit_batch)
        self._store = Batcher[Submission, Accepted | GatewayError](self._store_submissions)

    @property
    def window_seconds(self) -> float:
        """The replay window: how far a creation time may be from this node's clock."""
        return self._window

    # --- national submissions -------------------------------------------------

    def _admit_submission(
        self,
        caller: str,
        body: bytes,
        now: datetime,
        published: frozenset[bytes],
        directories: _Directories,
        admission: Admission | None = None,
    ) -> tuple[Admitted, bytes, str]:
        """Admission, the signed receipt and the document's keyed digest (on the CPU pool).

        ``admission``: another admission (this node's coordinators, its own
        deadline documents) instead of a national system's.
        """
        if admission is not None:
            admitted = admission(body, now, self._window)
        else:
            admitted = admit_submission(
                body,
                caller=caller,
                node_id=self.node_id,
                trust=self._trust.national,
                peers=self._trust.peer_ids,
                now=now,
                window_seconds=self._window,
                catalogues=self._catalogues,
                published=published,
                peer_access=self._peer_access,
                own_directory=directories.own,
                peer_directories=directories.peers,
            )
            refuse_coordinator_as_authority(admitted.verified, admitted.document_type)
        receipt = self._sign_receipt(
            caller,
            now,
            [
                ReceiptItem(
                    admitted.header.document_id, admitted.verified.sha256, ReceiptStatus.ACCEPTED
                )
            ],
        )
        return admitted, receipt, self._audit_key.digest(body)

    async def _admit_batch(self, batch: list[_Admission]) -> list[_Admitted | Exception]:
        """Admit several submissions in one CPU-pool call; each gets its result or its error."""
        results: list[_Admitted | Exception] = await self._cpu(self._admit_all, batch)
        return results

    def _admit_all(self, batch: list[_Admission]) -> list[_Admitted | Exception]:
        results: list[_Admitted | Exception] = []
        for job in batch:
            try:
                admitted, receipt, digest = self._admit_submission(
                    job.caller, job.body, job.now, job.published, job.directories, job.admission
                )
                # The deadline metadata and coordinator copies, in the same hand-off.
                metadata, copies = self._side_effects(admitted.document, admitted.header.sender)
                results.append((admitted, receipt, digest, metadata, copies))
            except Exception as error:  # raised again in that submission's own call
                results.append(error)
        return results

    def _directories(self) -> _Directories:
        """The directories the access rules read: this node's published one, the peers' cached ones."""
        own = self._published().entries if self._published is not None else None
        peers = self._peer_directories() if self._peer_directories is not None else {}
        return _Directories(own, peers)

    async def _check_forward(
        self, document: ExchangeDocument, target_directory: Directory | None
    ) -> str | None:
        """A Forward: check its target's competence for the stored exchange; return ForwardTo.

        The exchange's question set is read from the stored exchange (a
        Forward does not repeat it). An exchange not stored here, or not
        between the document's two authorities, is left to the storing
        transaction, which answers as for an unknown exchange.
        """
        if not isinstance(document, Forward | CoordinatorForward):
            return None
        header = document.header
        try:
            exchange = await self._db.run_txn(exchange_txn, header.exchange_id)
        except ExchangeNotFound:
            return document.forward_to
        if {header.sender, header.receiver} != {
            exchange.requester_authority,
            exchange.responder_authority,
        }:
            return document.forward_to
        catalogue = None
        if self._catalogues is not None and exchange.catalogue_version:
            catalogue = self._catalogues.get(exchange.catalogue_version)
        check_forward(
            document,
            area=exchange.area,
            question_set=exchange.question_set,
            target_directory=target_directory,
            catalogue=catalogue,
        )
        return document.forward_to

    def _published_certificates(self) -> frozenset[bytes]:
        """The certificates (DER) this node's published directory lists (kept per version)."""
        if self._published is None:
            return frozenset()
        published = self._published()
        cached = self._published_ders
        if cached is None or cached[0] is not published:
            ders = frozenset(der for e in published.entries.values() for der in e.certificates)
            cached = self._published_ders = (published, ders)
        return cached[1]

    def _sign_receipt(
        self,
        recipient: str,
        now: datetime,
        items: list[ReceiptItem],
        envelope_id: str | None = None,
    ) -> bytes:
        root = build_receipt(
            f"rcpt-{uuid.uuid4()}", self.node_id, recipient, now, items, envelope_id
        )
        return self._signer.sign(root)

    @staticmethod
    def _exchange_info(admitted: Admitted) -> ExchangeInfo:
        """The exchange as ``admitted`` would open it (used only if it is not stored yet).

        Which side the sender is on is not decided here: the storing
        transaction asks the lifecycle, with the stored exchange.
        """
        header = admitted.header
        document = admitted.document
        return ExchangeInfo(
            exchange_id=header.exchange_id,
            requester_authority=header.sender,
            responder_authority=header.receiver,
            requester_node=country_of(header.sender),
            responder_node=country_of(header.receiver),
            area=document.legislation_area if isinstance(document, Request) else "",
            question_set=document.question_set if isinstance(document, Request) else "",
            catalogue_version=header.catalogue_version or "",
        )

    def _side_effects(
        self, document: ExchangeDocument, local: str
    ) -> tuple[dict[str, object], tuple[str, ...]]:
        """The exchange metadata ``document`` sets, and this node's coordinators it goes to."""
        return deadline_metadata(document, self._deadlines), self._copies(document, local)

    async def submit(self, caller: str, body: bytes, admission: Admission | None = None) -> bytes:
        """Admit, store and acknowledge a national system's document; returns receipt bytes.

        ``admission`` replaces the national-system admission (a coordinator's
        document, or the node's own deadline documents).
        """
        now = self._now()
        try:
            # Read on the reactor thread (a stat of the directory state file).
            published = self._published_certificates()
            directories = self._directories()
            outcome = await self._admissions.submit(
                _Admission(caller, body, now, published, directories, admission)
            )
            if isinstance(outcome, Exception):
                raise outcome
            admitted_receipt = outcome[:3]
            metadata, copies = outcome[3], outcome[4]
            forward_to = await self._check_forward(admitted_receipt[0].document, directories.own)
        except OutsideReplayWindow as stale:
            # A national system retrying long after its first attempt: if these
            # very bytes were accepted then, it gets that receipt (the checks
            # before the window passed: signature, binding, caller).
            original = await self._stored_receipt(body)
            if original is None:
                self._metrics.refused.labels("api", stale.code).inc()
                await self._record_refusal(caller, body, stale, now)
                raise
            self._metrics.duplicates.labels("api").inc()
            return original
        except GatewayError as error:
            self._metrics.refused.labels("api", error.code).inc()
            await self._record_refusal(caller, body, error, now)
            raise
        admitted, receipt, digest = admitted_receipt
        header = admitted.header
        submission = Submission(
            message_id=header.document_id,
            exchange=self._exchange_info(admitted),
            document_type=admitted.document_type,
            sender_authority=header.sender,
            receiver_authority=header.receiver,
            peer_node=admitted.peer_node,
            document_created_at=header.created,
            body=body,
            receipt=receipt,
            digest=digest,
            forward_to=forward_to,
            metadata=metadata,
            copies=copies,
        )
        try:
            result = await self._store.submit(submission)
        except GatewayError as error:
            self._metrics.refused.labels("api", error.code).inc()
            raise
        if isinstance(result, DuplicateMessage):
            self._metrics.duplicates.labels("api").inc()
            return result.receipt
        if isinstance(result, GatewayError):
            self._metrics.refused.labels("api", result.code).inc()
            raise result
        self._metrics.accepted.labels("submitted", admitted.document_type).inc()
        log.info(
            "Accepted {document_type} {message_id} from {authority} for node {peer}",
            document_type=admitted.document_type,
            message_id=header.document_id,
            authority=caller,
            peer=admitted.peer_node,
        )
        self._on_queued(admitted.peer_node)
        if forward_to is not None:
            self._on_delivery(forward_to)  # the Request is delivered to the new responder
        return receipt

    async def _store_submissions(self, batch: list[Submission]) -> list[Accepted | GatewayError]:
        """Store the submissions admitted meanwhile in one transaction (see ``Batcher``).

        ``submit_messages_txn`` answers each one on its own (a refusal keeps
        its REFUSED entry in the transaction); a database failure fails them all.
        """
        results: list[Accepted | GatewayError] = await self._db.run_txn(
            submit_messages_txn,
            batch,
            sealer=self._sealer,
            now=self._now(),
            node=self.node_id,
            lifecycle=EXCHANGE_LIFECYCLE,
        )
        return results

    async def _record_refusal(
        self, actor: str, body: bytes, error: GatewayError, now: datetime, *, node: bool = False
    ) -> None:
        """A REFUSED entry, in a small transaction of its own, for a refusal before any storing one.

        Only what is known without trusting the refused bytes: the caller
        (authenticated by its TLS certificate), the error code, the message id
        a refused payload of a verified envelope names, and the keyed digest of
        the bytes. A server-side failure (5xx) is not a refusal and is not
        recorded; a failure to record is logged and the refusal still answered.
        """
        if error.http_status >= 500:
            return
        message_id = error.message_id if isinstance(error, PayloadRefused) else ""
        code = error.cause.code if isinstance(error, PayloadRefused) else error.code
        try:
            await self._db.run_txn(
                append_audit_txn,
                at=now,
                event=Event.REFUSED,
                actor=node_actor(actor) if node else actor,
                message_id=refusal_message(code, message_id),
                digest=await self._cpu(self._audit_key.digest, body),
            )
        except Exception:
            log.failure("Recording the refusal ({code}) in the audit log failed", code=code)

    async def _stored_receipt(self, body: bytes) -> bytes | None:
        """The receipt of an earlier accepted submission of exactly ``body``, or None."""
        message_id: str | None = await self._cpu(_document_id, body)
        if message_id is None:
            return None
        return await self._db.run_txn(stored_receipt_txn, message_id, sha256_hex(body))

    # --- envelopes from peers ---------------------------------------------------

    def _peer_signatures(self) -> TrustStore:
        """Every peer node's signing certificate, pinned (rebuilt after a trust reload).

        An envelope is verified against all of them, then admission requires
        the signer, the envelope's sender node and the TLS client certificate
        to name the same peer: an envelope signed by one peer and posted over
        another peer's connection is refused as PEER_MISMATCH, not as an
        unknown signature.
        """
        raw = self._trust.raw
        cached = self._all_peers
        if cached is None or cached[0] is not raw:
            signing = tuple(c for p in sorted(raw.peers) for c in raw.peers[p].signing_set)
            cached = self._all_peers = (raw, TrustStore(pinned=signing, revoked=raw.revoked))
        return cached[1]

    def _admit_envelope(
        self, peer: str, body: bytes, now: datetime, directories: _Directories
    ) -> tuple[InboundEnvelope, dict[str, ExchangeDocument]]:
        verified, envelope = admit_envelope(
            body,
            tls_peer=peer,
            node_id=self.node_id,
            trust=self._peer_signatures(),
            now=now,
            window_seconds=self._window,
        )
        payloads: list[InboundPayload] = []
        documents: dict[str, ExchangeDocument] = {}
        items: list[ReceiptItem] = []
        trust = self._trust.peer_authorities(peer)
        for payload in envelope.payloads:
            try:
                admitted = self._admit_payload(payload, peer, trust, now, directories)
            except GatewayError as error:
                raise PayloadRefused(payload.message_id, error) from None
            header = admitted.header
            metadata, copies = self._side_effects(admitted.document, header.receiver)
            documents[header.document_id] = admitted.document
            payloads.append(
                InboundPayload(
                    message_id=header.document_id,
                    exchange=self._exchange_info(admitted),
                    document_type=admitted.document_type,
                    sender_authority=header.sender,
                    receiver_authority=header.receiver,
                    document_created_at=header.created,
                    body=payload.data,
                    push=header.receiver in self._push,
                    digest=self._audit_key.digest(payload.data),
                    forward_to=_forward_to(admitted.document),
                    metadata=metadata,
                    copies=copies,
                )
            )
            items.append(ReceiptItem(payload.message_id, payload.sha256, ReceiptStatus.ACCEPTED))
        receipt = self._sign_receipt(peer, now, items, envelope.message_id)
        inbound = InboundEnvelope(
            envelope_id=envelope.message_id,
            peer_node=peer,
            sha256=verified.sha256,
            receipt=receipt,
            payloads=tuple(payloads),
        )
        return inbound, documents

    async def _check_forwards(
        self, peer: str, documents: Mapping[str, ExchangeDocument], directories: _Directories
    ) -> None:
        """Check each Forward of an envelope against the peer's directory (PayloadRefused)."""
        for message_id, document in documents.items():
            if _forward_to(document) is not None:
                try:
                    await self._check_forward(document, directories.peers.get(peer))
                except GatewayError as error:
                    raise PayloadRefused(message_id, error) from None

    def _admit_payload(
        self,
        payload: Payload,
        peer: str,
        trust: TrustStore,
        now: datetime,
        directories: _Directories,
    ) -> Admitted:
        """A document of a peer's authority; else one its node or a coordinator of it signed."""
        try:
            admitted = admit_payload(
                payload,
                peer_node=peer,
                node_id=self.node_id,
                trust=trust,
                now=now,
                catalogues=self._catalogues,
                peer_access=self._peer_access,
                own_directory=directories.own,
                peer_directory=directories.peers.get(peer),
            )
        except (InvalidSignature, SenderNotBound) as first:
            try:
                return admit_peer_special(
                    payload,
                    peer_node=peer,
                    node_id=self.node_id,
                    trust=self._special_trust(peer),
                    now=now,
                )
            except GatewayError:
                raise first from None
        refuse_coordinator_as_authority(admitted.verified, admitted.document_type)
        return admitted

    def _special_trust(self, peer: str) -> TrustStore:
        """The peer's signing certificate and node CA, pinned (rebuilt after a trust reload)."""
        raw = self._trust.raw
        cached = self._special
        if cached is None or cached[0] is not raw:
            stores = {
                p: TrustStore(pinned=(c.signing,), cas=(c.ca,), revoked=raw.revoked)
                for p, c in raw.peers.items()
            }
            cached = self._special = (raw, stores)
        return cached[1][peer]

    async def receive_envelope(self, peer: str, body: bytes) -> bytes:
        """Admit and store a peer's envelope; returns the signed receipt bytes."""
        now = self._now()
        try:
            directories = self._directories()
            admitted: tuple[InboundEnvelope, dict[str, ExchangeDocument]] = await self._cpu(
                self._admit_envelope, peer, body, now, directories
            )
            inbound, documents = admitted
            await self._check_forwards(peer, documents, directories)
            result = await self._db.run_txn(
                store_inbound_envelope_txn,
                inbound,
                sealer=self._sealer,
                now=now,
                node=self.node_id,
                lifecycle=EXCHANGE_LIFECYCLE,
            )
        except PayloadRefused as refused:
            self._metrics.refused.labels("peer", refused.cause.code).inc()
            await self._record_refusal(peer, body, refused, now, node=True)
            raise
        except GatewayError as error:
            self._metrics.refused.labels("peer", error.code).inc()
            await self._record_refusal(peer, body, error, now, node=True)
            raise
        if isinstance(result, Refused):
            # One document of the envelope cannot be stored (lifecycle conflict,
            # exchange of other authorities, erased exchange, reused id): name it.
            # Its REFUSED entry was written in the storing transaction.
            self._metrics.refused.labels("peer", result.error.code).inc()
            raise PayloadRefused(result.message_id, result.error)
        if result.replayed:
            self._metrics.duplicates.labels("peer").inc()
            return result.receipt
        stored = set(result.stored)
        for payload in inbound.payloads:
            if payload.message_id in stored:
                self._metrics.accepted.labels("received", payload.document_type).inc()
                self._on_received(payload.body, documents[payload.message_id])
                self._on_delivery(payload.receiver_authority)
        log.info(
            "Stored envelope {envelope_id} from {peer}: {stored} new, {duplicates} duplicate",
            envelope_id=inbound.envelope_id,
            peer=peer,
            stored=len(result.stored),
            duplicates=len(result.duplicates),
        )
        return result.receipt


#: What admitting one submission yields: the admitted document, the signed receipt, the
#: digest, the exchange metadata it sets and this node's coordinators it is copied to.
_Admitted = tuple[Admitted, bytes, str, dict[str, object], tuple[str, ...]]


@dataclass(frozen=True)
class _Admission:
    """One submission to admit on the CPU pool (see ``Pipeline._admit_submission``)."""

    caller: str
    body: bytes
    now: datetime
    published: frozenset[bytes]
    directories: _Directories
    admission: Admission | None = None


@dataclass(frozen=True)
class _Directories:
    """The directories the access rules read, taken once per request on the reactor thread."""

    own: Directory | None
    peers: Mapping[str, Directory]


def _document_id(body: bytes) -> str | None:
    """The DocumentId an exchange document names (a lookup key only: bytes are compared)."""
    try:
        root = parse_xml(body)
    except GatewayError:
        return None
    found = root.findtext(f"{{{DOC_NS}}}Header/{{{DOC_NS}}}DocumentId")
    return found.strip() if found else None


def _forward_to(document: ExchangeDocument) -> str | None:
    """The authority a Forward or a coordinator's forward hands the exchange to (else None)."""
    if isinstance(document, Forward | CoordinatorForward):
        return document.forward_to
    return None
