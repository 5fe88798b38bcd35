"""Every role against every kind of data of one exchange, over the real API of two real nodes.

NO-HELSEDIR (node NO) asks PT-OMD (node PT); before PT-OMD forwards the
request to PT-ACSS, the requester sends it a Reminder, which is still queued
for PT-OMD when it forwards. PT-ACSS accepts and answers. Both nodes
machine-translate free text (a local LibreTranslate stand-in). Then each
role reads what it can:

* the requester, the current responder (PT-ACSS), the previous responder
  (PT-OMD), another authority of each node -- over the national-system API
  (tracking record, deliveries pulled from cursor 0);
* the operator -- with the CLI commands that show exchanges (``queue``,
  ``retention``, ``audit export``) on both node directories;
* the peer node -- NO's node certificate against PT's peer API.

There is no coordinator or auditor role on any API: a coordinator is only a
name an Escalation may carry, and an auditor receives the audit export
(the operator row). The test prints the matrix and asserts it.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest_twisted
from lxml import etree

from gateway.core.audit import Event
from gateway.core.docparts import Header
from gateway.core.documents import Forward, Reminder, to_xml
from gateway.core.docxml import LocalizedText
from gateway.core.ns import DOC_NS
from gateway.core.xmlparse import parse_xml
from gateway.storage.audit import audit_log_txn
from gateway.storage.errors import ExchangeNotFound, MessageNotFound
from gateway.storage.exchanges import exchange_txn
from gateway.storage.messages import message_meta_txn
from gateway.testbed import (
    CATALOGUE_VERSION,
    NationalSystem,
    doctor_acceptance,
    doctor_answer,
    doctor_request,
)
from gateway.testbed.national import NationalSystemError
from tests.adapters.fakes import FakeLibreTranslate, Servers, fake_translation
from tests.nodes import two_nodes
from tests.transport.test_peer_security import refusal
from tests.waiting import until

AUTHORITIES = {"NO": ["NO-HELSEDIR", "NO-UDIR"], "PT": ["PT-OMD", "PT-ACSS", "PT-OTHER"]}
#: Unique free text (and its machine translations) to look for in every answer.
CANARY = "Kanari 7731 har søkt stilling som lege"
PERSON = "Sousa Carvalho"
DATA = (
    "tracking stages",
    "document bodies (pull)",
    "renderings",
    "machine translations",
    "free text",
)
ALLOWED, NONE, WITHHELD, UNKNOWN = "allowed", "none", "PERSONAL_DATA_WITHHELD", "EXCHANGE_NOT_FOUND"

EXPECTED = {
    "requester NO-HELSEDIR": (ALLOWED, ALLOWED, ALLOWED, ALLOWED, ALLOWED),
    "current responder PT-ACSS": (ALLOWED, ALLOWED, ALLOWED, ALLOWED, ALLOWED),
    "previous responder PT-OMD": (ALLOWED, NONE, WITHHELD, WITHHELD, WITHHELD),
    "other authority NO-UDIR": (UNKNOWN, NONE, UNKNOWN, UNKNOWN, UNKNOWN),
    "other authority PT-OTHER": (UNKNOWN, NONE, UNKNOWN, UNKNOWN, UNKNOWN),
    "operator (CLI)": (ALLOWED, NONE, NONE, NONE, NONE),
    "peer node NO": (ALLOWED, "NOT_FOUND", NONE, NONE, NONE),
}

_DOCUMENT = f"{{{DOC_NS}}}Document"


def _translations() -> tuple[str, ...]:
    return tuple(fake_translation(CANARY, lang) for lang in ("pt", "nb", "en"))


def _has_personal(text: bytes) -> bool:
    return CANARY.encode() in text or PERSON.encode() in text


def _has_translation(text: bytes) -> bool:
    return any(t.encode() in text for t in _translations())


async def _authority_row(system: NationalSystem, exchange_id: str) -> tuple[str, ...]:
    try:
        await system.tracking(exchange_id)
    except NationalSystemError as refused:
        tracked: bytes | None = None
        code = refused.remote_code
    else:
        assert system.last_tracking is not None
        tracked = etree.tostring(system.last_tracking, encoding="UTF-8")
        code = system.last_tracking.get("personalData") or NONE
    pulled = await system.pull(after=0, wait=0, limit=500)
    ours = [
        (d, raw)
        for d, raw in zip(pulled.deliveries, pulled.raw, strict=True)
        if d.exchange_id == exchange_id
    ]
    bodies = b"".join(d.document for d, _ in ours) + b"".join(raw for _, raw in ours)
    readable = bodies + (tracked or b"")
    renders = tracked is not None and system.last_tracking.find(_DOCUMENT) is not None  # type: ignore[union-attr]
    return (
        ALLOWED if tracked is not None else code,
        ALLOWED if ours else NONE,
        ALLOWED if renders else code,
        ALLOWED if _has_translation(readable) else code,
        ALLOWED if _has_personal(readable) else code,
    )


def _operator_row(node_dirs: list[Path], exchange_id: str) -> tuple[str, ...]:
    out = b""
    for node_dir in node_dirs:
        for args in (
            ["queue", str(node_dir)],
            ["queue", str(node_dir), "--json"],
            ["retention", str(node_dir), "--json"],
            ["audit", "export", str(node_dir), "-o", "-"],
        ):
            done = subprocess.run(
                [sys.executable, "-m", "gateway", *args], capture_output=True, check=False
            )
            assert done.returncode == 0, (args, done.stderr[-500:])
            out += done.stdout + done.stderr
    return (
        ALLOWED if exchange_id.encode() in out else NONE,
        NONE,
        ALLOWED if b"Rendering" in out else NONE,
        ALLOWED if _has_translation(out) else NONE,
        ALLOWED if _has_personal(out) else NONE,
    )


async def _peer_row(nodes: dict, pt_peer_url: str, exchange_id: str) -> tuple[str, ...]:
    client = nodes["NO"].parts.client
    tracked = await client.get(f"{pt_peer_url}/peer/v1/exchanges/{exchange_id}")
    assert tracked.status == 200
    body = bytes(tracked.body)
    stages = parse_xml(body).find(f"{{{DOC_NS}}}Stage") is not None
    deliveries = await client.get(f"{pt_peer_url}/peer/v1/deliveries?after=0")
    return (
        ALLOWED if stages else NONE,
        refusal(deliveries)[1],
        ALLOWED if b"Rendering" in body else NONE,
        ALLOWED if _has_translation(body) else NONE,
        ALLOWED if _has_personal(body) else NONE,
    )


def _print_matrix(matrix: dict[str, tuple[str, ...]]) -> None:
    width = max(len(r) for r in matrix)
    cols = [max(len(d), *(len(row[i]) for row in matrix.values())) for i, d in enumerate(DATA)]
    print()
    print(" | ".join([" " * width, *(d.ljust(c) for d, c in zip(DATA, cols, strict=True))]))
    for role, row in matrix.items():
        print(
            " | ".join([role.ljust(width), *(v.ljust(c) for v, c in zip(row, cols, strict=True))])
        )


async def _stored(db: object, message_id: str) -> bool:
    try:
        await db.run_txn(message_meta_txn, message_id)  # type: ignore[attr-defined]
    except MessageNotFound:
        return False
    return True


async def _is_responder(db: object, exchange_id: str, authority: str) -> bool:
    try:
        exchange = await db.run_txn(exchange_txn, exchange_id)  # type: ignore[attr-defined]
    except ExchangeNotFound:
        return False
    return bool(exchange.responder_authority == authority)


@pytest_twisted.ensureDeferred
async def test_every_role_against_every_kind_of_data_prints_and_matches_the_matrix(
    tmp_path: Path,
) -> None:
    servers = Servers()
    fake = FakeLibreTranslate()
    fake.languages = [
        {"code": "nn", "name": "Norwegian Nynorsk", "targets": ["pt", "nb", "en"]},
        {"code": "en", "name": "English", "targets": ["pt", "nb", "nn"]},
    ]
    url = servers.listen(fake)
    engine = (
        f'[translation]\nengine = "libretranslate"\n[translation.libretranslate]\n'
        f'url = "{url}"\nallow_insecure_http = true\n'
    )
    try:
        async with two_nodes(tmp_path, AUTHORITIES, {"NO": engine, "PT": engine}) as (
            nodes,
            systems,
        ):
            helsedir, omd, acss = systems["NO-HELSEDIR"], systems["PT-OMD"], systems["PT-ACSS"]
            now = datetime.now(UTC)
            request = doctor_request("M-1", "NO-HELSEDIR", "PT-OMD", now)
            first = replace(request.questions[0], free_text=LocalizedText(CANARY, "nn"))
            request = replace(request, questions=(first, *request.questions[1:]))
            exchange_id, request_id = request.header.exchange_id, request.header.document_id
            await helsedir.submit(helsedir.sign(to_xml(request)))
            assert len((await omd.pull(wait=20)).deliveries) == 1  # PT-OMD reads the Request

            reminder = Reminder(
                Header(
                    exchange_id,
                    f"{exchange_id}-R",
                    "NO-HELSEDIR",
                    "PT-OMD",
                    now,
                    CATALOGUE_VERSION,
                    request_id,
                ),
                note=LocalizedText(CANARY, "nn"),
            )
            await helsedir.submit(helsedir.sign(to_xml(reminder)))
            await until(lambda: _stored(nodes["PT"].parts.db, reminder.header.document_id))

            forward = Forward(
                Header(
                    exchange_id,
                    "PT-OMD:F-1",
                    "PT-OMD",
                    "NO-HELSEDIR",
                    now,
                    CATALOGUE_VERSION,
                    request_id,
                ),
                forward_to="PT-ACSS",
            )
            await omd.submit(omd.sign(to_xml(forward)))
            for country in ("NO", "PT"):
                db = nodes[country].parts.db
                await until(lambda db=db: _is_responder(db, exchange_id, "PT-ACSS"))
            handed = await acss.pull(wait=20)
            assert [d.exchange_id for d in handed.deliveries] == [exchange_id]

            moved = replace(request, header=replace(request.header, receiver="PT-ACSS"))
            await acss.submit(acss.sign(to_xml(doctor_acceptance(moved, now))))
            answer = replace(doctor_answer(moved, now), note=LocalizedText(CANARY, "nn"))
            await acss.submit(acss.sign(to_xml(answer)))
            await until(lambda: _stored(nodes["NO"].parts.db, answer.header.document_id))

            async def translated() -> bool:
                ok = True
                for system in (helsedir, acss):
                    await system.tracking(exchange_id)
                    ok &= _has_translation(etree.tostring(system.last_tracking, encoding="UTF-8"))
                return ok

            await until(translated)
            reads_before = await _reads(nodes)

            matrix = {
                "requester NO-HELSEDIR": await _authority_row(helsedir, exchange_id),
                "current responder PT-ACSS": await _authority_row(acss, exchange_id),
                "previous responder PT-OMD": await _authority_row(omd, exchange_id),
                "other authority NO-UDIR": await _authority_row(systems["NO-UDIR"], exchange_id),
                "other authority PT-OTHER": await _authority_row(systems["PT-OTHER"], exchange_id),
                "operator (CLI)": _operator_row(
                    [nodes["NO"].setup.node_dir, nodes["PT"].setup.node_dir], exchange_id
                ),
                "peer node NO": await _peer_row(nodes, nodes["PT"].setup.peer_url, exchange_id),
            }
            reads_after = await _reads(nodes)
    finally:
        await servers.close()
    _print_matrix(matrix)
    assert matrix == EXPECTED
    # Every read of personal data is an audit event, with the reader as actor; a
    # former responder's or a stranger's read is none.
    new = reads_after - reads_before
    assert {actor for actor, _, _, _ in new} == {"NO-HELSEDIR", "PT-ACSS"}
    assert all(exchange == exchange_id and message for _, exchange, message, _ in new)
    assert not {a for a, _, _, _ in reads_after} & {"PT-OTHER", "NO-UDIR"}
    omd_reads = {m for a, _, m, _ in reads_after if a == "PT-OMD"}
    assert omd_reads == {request_id}  # only while it was the responder


async def _reads(nodes: dict) -> set[tuple[str, str, str, str]]:
    """(actor, exchange, message, node#seq) of every PERSONAL_DATA_READ entry on both nodes."""
    found: set[tuple[str, str, str, str]] = set()
    for country, node in nodes.items():
        for entry in await node.parts.db.run_txn(audit_log_txn):
            if entry.event == Event.PERSONAL_DATA_READ:
                # The keyed digest of the document read (never the document).
                assert len(entry.digest) == 64, entry
                where = f"{country}#{entry.seq}"
                found.add((entry.actor, entry.exchange_id, entry.message_id, where))
    return found
