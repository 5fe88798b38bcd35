"""Every exchange document of docs/examples/ is accepted: by the catalogue, and by real nodes.

The examples are what national-system developers copy, so each must be
accepted as it stands once it is dated and signed (docs/client.md): first
against the catalogue (codes, and answer options valid for their question),
then submitted through two real nodes in the order of a real exchange. The
main path plays NO-HELSEDIR:2026-000417 from the Request to the Closure; the
documents that end an exchange otherwise (Forward, Rejection, Withdrawal)
each get an exchange of their own, the same documents with their ids
renumbered.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from gateway.client import NodeClient
from gateway.core.admission import check_catalogue
from gateway.core.catalogue import load_catalogues
from gateway.core.documents import read_exchange_document
from gateway.core.schemas import COORDINATOR_DOCUMENT_TYPES, EXCHANGE_DOCUMENT_TYPES
from gateway.core.xmlparse import parse_xml
from tests.core.test_protocol_examples import file_name
from tests.nodes import two_nodes
from tests.test_client import client_of

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
#: The running example, in the order its documents are sent.
MAIN_PATH = (
    "request",
    "reply-date-proposal",
    "acceptance",
    "information-request",
    "additional-information",
    "reminder",
    "escalation",
    "answer",
    "closure",
)
#: Documents that end an exchange another way: each after a Request of its own exchange.
BRANCHES = {"forward": "000418", "rejection": "000419", "withdrawal": "000420", "dispute": "000421"}
#: The coordinators' documents: sent with a coordinator's certificate to the coordination
#: endpoint (docs/coordinators.md; played across two nodes in tests/service/test_coordinators_*).
COORDINATOR_EXAMPLES = {file_name(t)[: -len(".xml")] for t in COORDINATOR_DOCUMENT_TYPES}


def test_the_main_path_and_branches_use_every_exchange_document_example() -> None:
    used = set(MAIN_PATH) | set(BRANCHES)
    every = {file_name(t)[: -len(".xml")] for t in EXCHANGE_DOCUMENT_TYPES}
    assert used == every - COORDINATOR_EXAMPLES


@pytest.mark.parametrize("name", sorted(set(MAIN_PATH) | set(BRANCHES) | COORDINATOR_EXAMPLES))
def test_every_exchange_example_uses_codes_the_catalogue_holds(name: str) -> None:
    document = read_exchange_document(parse_xml((EXAMPLES / f"{name}.xml").read_bytes()))
    check_catalogue(document, load_catalogues())  # raises CATALOGUE_* for a wrong code


def renumbered(name: str, exchange: str) -> bytes:
    """The example with its exchange and document ids moved to exchange ``exchange``."""
    data = (EXAMPLES / f"{name}.xml").read_bytes()
    return data.replace(b"2026-000417", f"2026-{exchange}".encode()).replace(
        b"PT-OMD:2026-1187", f"PT-OMD:2026-{exchange}".encode()
    )


async def send(sender: NodeClient, receiver: NodeClient, cursor: list[int], data: bytes) -> str:
    """Sign (dated now) and submit ``data``; wait until the receiver pulled it. Its state after."""
    signed = sender.sign(data)
    receipt = await deferToThread(sender.submit, signed)
    (item,) = receipt.items
    for _ in range(10):
        pulled = await deferToThread(receiver.pull, cursor[0], wait=10)
        cursor[0] = pulled.cursor
        if item.message_id in {i.message_id for i in pulled.items}:
            break
    else:
        raise AssertionError(f"{item.message_id} was not delivered")
    root = parse_xml(signed)
    exchange = root.findtext(
        "{urn:imi-gateway:protocol:1}Header/{urn:imi-gateway:protocol:1}ExchangeId"
    )
    tracking = await deferToThread(sender.track, exchange)
    return tracking.state


@pytest_twisted.ensureDeferred
async def test_the_examples_signed_now_are_accepted_by_two_nodes_in_exchange_order(
    tmp_path,
) -> None:
    authorities = {"NO": ["NO-HELSEDIR"], "PT": ["PT-OMD", "PT-ACSS"]}
    async with two_nodes(tmp_path, authorities) as (nodes, _systems):
        no = client_of(nodes["NO"].setup, "NO-HELSEDIR")
        pt = client_of(nodes["PT"].setup, "PT-OMD")
        cursors = {"NO": [0], "PT": [0]}
        try:
            states = []
            for name in MAIN_PATH:
                data = (EXAMPLES / f"{name}.xml").read_bytes()
                from_no = b"<SenderAuthority>NO-HELSEDIR<" in data
                sender, receiver = (no, pt) if from_no else (pt, no)
                states.append(
                    await send(sender, receiver, cursors["PT" if from_no else "NO"], data)
                )
            assert states == [
                "requested",
                "reply_date_proposed",
                "accepted",
                "information_requested",
                "information_provided",
                "information_provided",
                "information_provided",
                "answered",
                "closed",
            ]
            for name, exchange in BRANCHES.items():
                await send(no, pt, cursors["PT"], renumbered("request", exchange))
                sender, receiver, cursor = (
                    (no, pt, cursors["PT"]) if name == "withdrawal" else (pt, no, cursors["NO"])
                )
                state = await send(sender, receiver, cursor, renumbered(name, exchange))
                assert (
                    state
                    == {
                        "forward": "forwarded",
                        "rejection": "rejected",
                        "withdrawal": "withdrawn",
                        "dispute": "disputed",
                    }[name]
                )
        finally:
            no.close()
            pt.close()
