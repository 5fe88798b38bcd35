"""docs/coordinators.md runs as written: its commands and curl calls against two real nodes.

Every ```sh block runs in order in one working directory (``node-no`` and
``node-pt`` are the bed's node directories), with ``imi-gateway`` on the
PATH; the ```http or ```text block after it is the documented answer,
checked as docs/api.md's are (tests/test_api_docs.py). Section 1
(registration) runs before the nodes start; then the Portuguese authority
disputes the request NO-HELSEDIR:2026-000417 and the rest of the guide
plays across the running nodes. After each posted coordinator document the
test waits until both nodes hold it, as a coordinator would see in tracking.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest_twisted
from twisted.internet import reactor, utils

from gateway.core.catalogue import load_catalogues
from gateway.core.docparts import Header
from gateway.core.documents import Dispute, to_xml
from gateway.core.ns import DOC_NS
from gateway.core.xmlparse import parse_xml
from gateway.storage.errors import MessageNotFound
from gateway.storage.messages import message_meta_txn
from gateway.testbed import NationalSystem, doctor_request, setup_nodes, start_in_process
from tests.conftest import require_tool
from tests.nodes import RunningNode, settled
from tests.test_api_docs import Example, check_http, check_text
from tests.waiting import until

DOC = Path(__file__).resolve().parents[1] / "docs" / "coordinators.md"
EXCHANGE = "NO-HELSEDIR:2026-000417"


def blocks() -> list[tuple[int, Example]]:
    """(section number, example) for every ```sh block; the answer may be empty."""
    text = DOC.read_text(encoding="utf-8")
    found = [
        (m.start(), text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2))
        for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)
    ]
    out = []
    for i, (start, line, kind, body) in enumerate(found):
        if kind != "sh":
            continue
        section = re.findall(r"^## (\d+)\.", text[:start], flags=re.M)
        answer_kind, answer = "", ""
        if i + 1 < len(found) and found[i + 1][2] in ("http", "text"):
            answer_kind, answer = found[i + 1][2], found[i + 1][3]
        number = int(section[-1]) if section else 0
        out.append((number, Example(line, body.strip(), answer_kind, answer)))
    return out


def test_the_guide_shows_every_coordinator_action() -> None:
    commands = " ".join(e.command for _, e in blocks())
    for needed in (
        "coordinators add",
        "coordinators list",
        "coordinators show",
        "coordinators exchanges",
        "/api/v1/coordination/exchanges",
        "/api/v1/coordination/documents",
        " note ",
        " settle ",
        " reminder ",
    ):
        assert needed in commands, needed


async def _run(example: Example, cwd: Path, hosts: dict[str, str]) -> None:
    command = example.command
    for documented, real in hosts.items():
        command = command.replace(documented, real)
    env = dict(os.environ, CURL_HOME=str(cwd))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    out, err, code = await utils.getProcessOutputAndValue(
        "/bin/sh", ["-c", command], env=env, path=str(cwd)
    )
    assert code == 0, (example.line, err.decode())
    output = out.decode("utf-8")
    if example.kind == "text":
        check_text(example, output)
    elif example.kind == "http":
        check_http(example, output)


def _document_id(signed: Path) -> str:
    found = parse_xml(signed.read_bytes()).findtext(f"{{{DOC_NS}}}Header/{{{DOC_NS}}}DocumentId")
    assert found is not None
    return found


async def _both_hold(nodes: dict[str, RunningNode], message_id: str) -> None:

    async def held() -> bool:
        for node in nodes.values():
            try:
                await node.parts.db.run_txn(message_meta_txn, message_id)
            except MessageNotFound:
                return False
        return True

    await until(held)


@pytest_twisted.ensureDeferred
async def test_the_coordinators_guide_runs_as_written(tmp_path: Path) -> None:
    require_tool("curl")
    setups = setup_nodes(tmp_path, {"NO": ["NO-HELSEDIR"], "PT": ["PT-OMD"]})
    found = blocks()
    for section, example in found:
        if section <= 1:
            await _run(example, tmp_path, {})
    nodes = {}
    for country, setup in setups.items():
        service, parts = start_in_process(setup, reactor, catalogues=load_catalogues())
        nodes[country] = RunningNode(setup, service, parts)
    systems: list[NationalSystem] = []
    try:
        await settled(nodes.values())
        helsedir = NationalSystem(reactor, setups["NO"], "NO-HELSEDIR")
        omd = NationalSystem(reactor, setups["PT"], "PT-OMD")
        systems += [helsedir, omd]
        now = datetime.now(UTC)
        request = doctor_request(EXCHANGE, "NO-HELSEDIR", "PT-OMD", now)
        request = doctor_request(EXCHANGE, "NO-HELSEDIR", "PT-OMD", now)
        await helsedir.submit(helsedir.sign(to_xml(request)))
        await _both_hold(nodes, request.header.document_id)
        dispute = Dispute(
            Header(EXCHANGE, "PT-OMD:2026-000417-D1", "PT-OMD", "NO-HELSEDIR", now),
            "QUESTION_NOT_JUSTIFIED",
        )
        signed = tmp_path / "dispute.signed.xml"
        signed.write_bytes(omd.sign(to_xml(dispute)))
        await omd.submit(signed.read_bytes())
        await _both_hold(nodes, _document_id(signed))
        hosts = {
            "https://gateway.example.no:8443": f"https://127.0.0.1:{setups['NO'].api_port}",
            "https://gateway.example.pt:8443": f"https://127.0.0.1:{setups['PT'].api_port}",
        }
        for section, example in found:
            if section <= 1:
                continue
            await _run(example, tmp_path, hosts)
            posted = re.search(r"--data-binary @(\S+)", example.command)
            if posted and example.expected.startswith("HTTP/1.1 200"):
                await _both_hold(nodes, _document_id(tmp_path / posted.group(1)))
    finally:
        for system in systems:
            await system.close()
        for node in nodes.values():
            await node.stop()
