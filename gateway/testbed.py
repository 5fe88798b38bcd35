"""A test bed of real nodes on loopback, and simulated national systems.

Used by ``imi-gateway demo``, ``imi-gateway bench`` and the two-node tests,
so all three exercise exactly what an operator sets up by hand:
``init`` each node, ``keys issue-national`` for each authority, exchange
``keys export`` / ``keys import-peer`` bundles, then ``run``.

A :class:`NationalSystem` is what an authority's IT system does: it signs
documents with its own key (issued by its node), submits them over HTTPS
with the same certificate as a TLS client certificate, verifies the node's
signed receipts, pulls deliveries with a cursor and reads tracking records.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from lxml import etree
from twisted.internet.defer import inlineCallbacks

from gateway.core.admission import owns_id, scoped_id
from gateway.core.certs import TrustStore, load_pem_certificate, load_pem_private_key
from gateway.core.docparts import PersonConcerned, Question, Reply
from gateway.core.documents import (
    Acceptance,
    Answer,
    Closure,
    Header,
    Request,
)
from gateway.core.docxml import LocalizedText
from gateway.core.envelopes import Delivery, Receipt, read_delivery, read_error, read_receipt
from gateway.core.errors import GatewayError
from gateway.core.ns import DOC_NS
from gateway.core.signing import Signer, verify
from gateway.core.xmlparse import parse_xml
from gateway.keystore import (
    InitOptions,
    export_node_bundle,
    import_peer,
    init_node_dir,
    issue_national_certificate,
    load_node_keys,
)
from gateway.transport.client import HTTPSClient
from gateway.transport.tls import PinnedPeersPolicy


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (for node configurations made before listening)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass(frozen=True)
class NationalCredentials:
    authority_id: str
    key_path: Path
    certificate_path: Path


@dataclass
class NodeSetup:
    node_id: str
    node_dir: Path
    api_port: int
    peer_port: int
    metrics_port: int
    authorities: dict[str, NationalCredentials] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"


def _listen_on_loopback(node_dir: Path) -> None:
    config = node_dir / "gateway.toml"
    text = config.read_text()
    for section in ("[api]", "[peer]"):
        text = text.replace(f"{section}\n", f'{section}\nhost = "127.0.0.1"\n', 1)
    config.write_text(text)


def _merge_config(path: Path, extra: str) -> None:
    """Add ``extra`` TOML to the file: keys of a [section] the file has go under its header."""
    text = path.read_text()
    section: str | None = None
    appended: list[str] = []
    for line in extra.strip().splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            section = stripped
            if f"\n{section}\n" not in f"\n{text}":
                appended.append(line)
                section = None
            continue
        if stripped.startswith("[["):
            section = None
            appended.append(line)
            continue
        if section is not None:
            text = text.replace(f"{section}\n", f"{section}\n{line}\n", 1)
        else:
            appended.append(line)
    if appended:
        text += "\n" + "\n".join(appended) + "\n"
    path.write_text(text)


def setup_nodes(
    base_dir: Path,
    authorities: Mapping[str, Sequence[str]],
    *,
    extra_config: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> dict[str, NodeSetup]:
    """Create one node per country in ``authorities`` under ``base_dir``, all peers of each other.

    ``authorities`` maps a country code to the authority ids registered at
    that node (each gets a national-system certificate). ``extra_config``
    maps a country to TOML text appended to its configuration.
    """
    nodes: dict[str, NodeSetup] = {}
    for country, ids in authorities.items():
        api, peer, metrics = free_ports(3)
        node_dir = base_dir / f"node-{country.lower()}"
        init_node_dir(
            node_dir,
            InitOptions(
                country=country,
                api_port=api,
                peer_port=peer,
                metrics_port=metrics,
                hosts=("127.0.0.1",),
                public_url=f"https://127.0.0.1:{peer}",
            ),
            now=now,
        )
        _listen_on_loopback(node_dir)
        setup = NodeSetup(country, node_dir, api, peer, metrics)
        for authority in ids:
            issued = issue_national_certificate(
                node_dir, authority, base_dir / f"national-{authority.lower()}", now=now
            )
            setup.authorities[authority] = NationalCredentials(
                authority, issued.key_path, issued.certificate_path
            )
        if extra_config and country in extra_config:
            _merge_config(node_dir / "gateway.toml", extra_config[country])
        nodes[country] = setup
    for country, setup in nodes.items():
        bundle = export_node_bundle(setup.node_dir)
        for other_country, other in nodes.items():
            if other_country != country:
                import_peer(other.node_dir, bundle)
    return nodes


class NationalSystemError(GatewayError):
    """The node refused a national system's request (carries the node's code)."""

    code = "NATIONAL_SYSTEM_REFUSED"

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.remote_code = code


@dataclass(frozen=True)
class Pulled:
    cursor: int
    deliveries: list[Delivery]
    raw: list[bytes]


class NationalSystem:
    """A simulated national IT system of one authority, talking to its node's API."""

    def __init__(self, reactor: Any, node: NodeSetup, authority_id: str) -> None:
        creds = node.authorities[authority_id]
        keys = load_node_keys(node.node_dir)
        self.authority_id = authority_id
        key = load_pem_private_key(creds.key_path.read_bytes())
        cert = load_pem_certificate(creds.certificate_path.read_bytes())
        self.signer = Signer(key, cert)
        self._node_trust = TrustStore(pinned=(keys.signing.certificate,))
        self._base = node.api_url
        policy = PinnedPeersPolicy(
            key, cert, {("127.0.0.1", node.api_port): (keys.ca.certificate, keys.tls.certificate)}
        )
        self.client = HTTPSClient(reactor, policy, timeout_seconds=60)
        #: The last tracking record read (the whole XML tree, renderings included).
        self.last_tracking: etree._Element | None = None

    def sign(self, root: etree._Element) -> bytes:
        return self.signer.sign(root)

    def _raise_for(self, answer: Any) -> None:
        try:
            error = read_error(parse_xml(answer.body))
            raise NationalSystemError(answer.status, error.code, error.message)
        except GatewayError as exc:
            if isinstance(exc, NationalSystemError):
                raise
            raise NationalSystemError(
                answer.status, f"HTTP_{answer.status}", "no error document"
            ) from None

    def check_receipt(self, body: bytes, signed: bytes) -> Receipt:
        verified = verify(body, self._node_trust, now=datetime.now(UTC))
        receipt = read_receipt(verified.root)
        import hashlib

        digest = hashlib.sha256(signed).hexdigest()
        if [i.sha256 for i in receipt.items] != [digest]:
            raise NationalSystemError(200, "RECEIPT_MISMATCH", "the receipt names other bytes")
        return receipt

    @inlineCallbacks
    def submit(self, signed: bytes) -> Any:
        """POST a signed document; returns the verified Receipt."""
        answer = yield self.client.post(self._base + "/api/v1/documents", signed)
        if answer.status != 200:
            self._raise_for(answer)
        return self.check_receipt(answer.body, signed)

    @inlineCallbacks
    def submit_raw(self, body: bytes) -> Any:
        """POST any bytes; returns the HTTPAnswer (for tests of refusals)."""
        answer = yield self.client.post(self._base + "/api/v1/documents", body)
        return answer

    @inlineCallbacks
    def pull(self, after: int = 0, wait: int = 0, limit: int = 100) -> Any:
        """Fetch deliveries after ``after`` (acknowledging it); each Delivery verified."""
        answer = yield self.client.get(
            f"{self._base}/api/v1/deliveries?after={after}&wait={wait}&limit={limit}"
        )
        if answer.status != 200:
            self._raise_for(answer)
        root = parse_xml(answer.body)
        raw = [base64.b64decode(item.text or "") for item in root.iter(f"{{{DOC_NS}}}Item")]
        now = datetime.now(UTC)
        deliveries = [read_delivery(verify(r, self._node_trust, now=now).root) for r in raw]
        return Pulled(int(root.get("cursor", "0")), deliveries, raw)

    @inlineCallbacks
    def tracking(self, exchange_id: str) -> Any:
        """The tracking record as (state, [(stage, at, node, message_id)])."""
        answer = yield self.client.get(f"{self._base}/api/v1/exchanges/{exchange_id}")
        if answer.status != 200:
            self._raise_for(answer)
        root = parse_xml(answer.body)
        stages = [
            (e.get("code"), e.get("at"), e.get("node"), e.get("messageId"))
            for e in root.iter(f"{{{DOC_NS}}}Stage")
        ]
        self.last_tracking = root
        return root.get("state"), stages

    def close(self) -> Any:
        return self.client.close()


# --- the running example: a diploma and good-standing check --------------------------

CATALOGUE_VERSION = "2026.1"
#: Is the diploma authentic? Is she legally established (in good standing)? Any sanctions?
DOCTOR_QUESTIONS = ("PQD-DOCTOR-001", "PQD-DOCTOR-009", "PQD-DOCTOR-010")
DOCTOR_ANSWERS = (("PQD-DOCTOR-001", "YES"), ("PQD-DOCTOR-009", "YES"), ("PQD-DOCTOR-010", "NONE"))


def owned_id(authority_id: str, identifier: str) -> str:
    """``identifier`` if ``authority_id`` owns it, else scoped to it (ids are scoped per authority)."""
    return identifier if owns_id(authority_id, identifier) else scoped_id(authority_id, identifier)


def doctor_request(
    exchange_id: str, requester: str, responder: str, created: datetime, *, free_text: bool = True
) -> Request:
    """A Request: is this Portuguese doctor's diploma authentic, and is she in good standing?

    ``exchange_id`` is scoped to ``requester`` unless it already is
    (``IMI-1`` becomes ``NO-HELSEDIR:IMI-1``); read the result's header.
    """
    exchange_id = owned_id(requester, exchange_id)
    note = LocalizedText(
        "Ho har søkt stilling som lege ved sjukehuset vårt. Vi ber om stadfesting av at "
        "vitnemålet er ekte, og at ho har rett til å praktisere.",
        "nn",
    )
    questions = tuple(
        Question(code, note if (free_text and i == 0) else None)
        for i, code in enumerate(DOCTOR_QUESTIONS)
    )
    return Request(
        header=Header(
            exchange_id, f"{exchange_id}-1", requester, responder, created, CATALOGUE_VERSION
        ),
        legislation_area="PQD",
        question_set="PQD-DOCTOR",
        sender_language="nn",
        requested_reply_date=(created + timedelta(days=14)).date(),
        questions=questions,
        person=PersonConcerned(
            given_names="Maria Helena",
            family_name="Sousa Carvalho",
            date_of_birth=date(1988, 5, 4),
            nationalities=("PT",),
        ),
    )


def doctor_acceptance(request: Request, created: datetime) -> Acceptance:
    h = request.header
    return Acceptance(
        header=Header(
            h.exchange_id,
            owned_id(h.receiver, f"{h.exchange_id}-2"),
            h.receiver,
            h.sender,
            created,
            CATALOGUE_VERSION,
            h.document_id,
        ),
        agreed_reply_date=request.requested_reply_date,
    )


def doctor_answer(request: Request, created: datetime) -> Answer:
    h = request.header
    return Answer(
        header=Header(
            h.exchange_id,
            owned_id(h.receiver, f"{h.exchange_id}-3"),
            h.receiver,
            h.sender,
            created,
            CATALOGUE_VERSION,
            h.document_id,
        ),
        replies=tuple(Reply(q, (o,)) for q, o in DOCTOR_ANSWERS),
    )


def doctor_closure(request: Request, answer_id: str, created: datetime) -> Closure:
    h = request.header
    return Closure(
        header=Header(
            h.exchange_id,
            f"{h.exchange_id}-4",
            h.sender,
            h.receiver,
            created,
            CATALOGUE_VERSION,
            answer_id,
        ),
    )


def node_certificate(node_dir: Path) -> x509.Certificate:
    return load_node_keys(node_dir).signing.certificate


__all__: Iterable[str] = (
    "NationalSystem",
    "NodeSetup",
    "free_ports",
    "node_certificate",
    "setup_nodes",
)
