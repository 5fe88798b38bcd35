"""Every example of docs/api.md runs against two real nodes and answers as documented.

The examples are the ```sh blocks of docs/api.md, each followed by the
documented answer (an ```http block: status line, headers, body; or a
```text block: output lines, or a curl error). The test starts a Norwegian
and a Portuguese node on loopback (real TLS, signatures and storage), puts
the files the examples start from into their working directory (the
handed-over national-system credentials and docs/examples/request.xml as it
stands; ``node-no/`` is there already), replaces the example host names with
the nodes' addresses, runs each example in order with ``/bin/sh`` (the real
curl, ``imi-gateway``, sed, base64, openssl), and checks its answer: the HTTP
status, every documented header, the root element and its documented
attributes, the error code; for text, every documented line of standard
output and error (a line ending in ``…`` is a prefix). Posting the same bytes
twice must give the same answer byte for byte, as the page promises.

Between examples the test plays what the page says happened meanwhile:
PT-OMD answers the request with docs/examples/reply-date-proposal.xml
(before the deliveries examples), and the Norwegian node's envelope around
the signed request is written to ``envelope.xml`` (before the peer examples).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest_twisted
from lxml import etree
from twisted.internet import utils

from gateway.client import with_created
from gateway.core.envelopes import Payload, build_envelope
from gateway.core.signing import Signer
from gateway.core.xmlparse import parse_xml
from gateway.keystore import load_node_keys
from gateway.testbed import NationalSystem
from tests.conftest import require_tool
from tests.nodes import two_nodes

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
ELLIPSIS = "…"
EXAMPLES = DOC.parent / "examples"
#: The running example of the page (and of protocol.md and docs/examples).
EXCHANGE = "NO-HELSEDIR:2026-000417"


@dataclass(frozen=True)
class Example:
    line: int
    command: str
    kind: str  # "http" or "text"
    expected: str


def examples() -> list[Example]:
    text = DOC.read_text(encoding="utf-8")
    blocks = [
        (text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2))
        for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)
    ]
    found = []
    for i, (line, kind, body) in enumerate(blocks):
        if kind != "sh":
            continue
        assert i + 1 < len(blocks), f"api.md:{line}: an example without its answer"
        _, answer_kind, answer = blocks[i + 1]
        assert answer_kind in ("http", "text"), f"api.md:{line}: no answer block follows"
        found.append(Example(line, body.strip(), answer_kind, answer))
    return found


def test_every_example_is_followed_by_its_documented_answer() -> None:
    found = examples()
    assert len(found) >= 15
    paths = " ".join(e.command for e in found)
    for endpoint in (
        "/api/v1/documents",
        "/api/v1/deliveries",
        "/api/v1/exchanges/",
        "/api/v1/authorities",
        "/peer/v1/envelopes",
        "/peer/v1/exchanges/",
        "/peer/v1/directory",
        "/health",
        "/ready",
        "/metrics",
    ):
        assert endpoint in paths, f"no example of {endpoint}"


# --- checking one answer ---------------------------------------------------------------------


def split_http(output: str) -> tuple[int, dict[str, str], str]:
    head, _, body = output.replace("\r\n", "\n").partition("\n\n")
    status_line, *header_lines = head.split("\n")
    status = int(status_line.split()[1])
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def root_of(xml: str) -> tuple[str, dict[str, str]]:
    """The documented root element's name and attributes (from its start tag)."""
    xml = re.sub(r"^<\?xml[^>]*\?>\s*", "", xml.strip())
    match = re.match(r"<([A-Za-z]+)([^>]*)>", xml)
    assert match is not None, xml[:80]
    attributes = dict(re.findall(r'([A-Za-z:]+)="([^"]*)"', match.group(2)))
    return match.group(1), attributes


def check_http(example: Example, output: str) -> str:
    status, headers, body = split_http(output)
    want_status, want_headers, want_body = split_http(example.expected)
    where = f"api.md:{example.line}"
    assert status == want_status, (where, output[:600])
    for name, value in want_headers.items():
        assert headers.get(name) == value, (where, name, headers)
    want_body = want_body.strip()
    if not want_body.startswith("<"):
        assert body.strip().splitlines()[:1] == want_body.splitlines()[:1], (where, body[:200])
        return body
    want_root, want_attributes = root_of(want_body)
    root = etree.fromstring(body.encode("utf-8"))
    assert etree.QName(root).localname == want_root, (where, body[:300])
    for name, value in want_attributes.items():
        if name.startswith("xmlns") or ELLIPSIS in value:
            continue
        assert root.get(name) == value, (where, name, body[:300])
    code = re.search(r"<Code>([A-Z_]+)</Code>", want_body)
    if code:
        got = root.findtext("{urn:imi-gateway:protocol:1}Code")
        assert got == code.group(1), (where, body[:300])
    return body


def check_text(example: Example, output: str) -> None:
    lines = output.splitlines()
    for want in example.expected.strip().splitlines():
        if want.endswith(ELLIPSIS):
            prefix = want[: -len(ELLIPSIS)].rstrip()
            assert any(line.startswith(prefix) for line in lines), (example.line, want)
        else:
            assert want in lines, (example.line, want)


# --- the test bed ----------------------------------------------------------------------------


def signed_envelope(node_dir: Path, document: bytes, message_id: str) -> bytes:
    """An envelope of node ``node_dir`` to PT carrying the signed ``document``."""
    signing = load_node_keys(node_dir).signing
    root = build_envelope(
        "NO", "PT", f"env-{uuid.uuid4()}", datetime.now(UTC), [Payload(message_id, document)]
    )
    return Signer(signing.key, signing.certificate).sign(root)


async def wait_for_delivery(system: NationalSystem, message_id: str) -> None:
    """Until ``message_id`` was delivered to ``system`` (long poll; bounded)."""
    cursor = 0
    for _ in range(20):
        pulled = await system.pull(after=cursor, wait=5)
        cursor = pulled.cursor
        if any(message_id.encode() in d.document for d in pulled.deliveries):
            return
    raise AssertionError(f"{message_id} was not delivered")


async def play_reply_date_proposal(omd: NationalSystem, helsedir: NationalSystem) -> None:
    """PT-OMD (which received the request) answers it with the reply-date proposal example."""
    proposal = parse_xml((EXAMPLES / "reply-date-proposal.xml").read_bytes())
    await omd.submit(omd.sign(with_created(proposal)))
    pulled = await helsedir.pull(after=0, wait=10)  # after=0 acknowledges nothing
    assert [d.document_type for d in pulled.deliveries] == ["ReplyDateProposal"]


@pytest_twisted.ensureDeferred
async def test_the_examples_answer_as_documented(tmp_path) -> None:
    require_tool("curl")
    require_tool("openssl")
    found = examples()
    async with two_nodes(tmp_path) as (nodes, systems):
        helsedir, omd = systems["NO-HELSEDIR"], systems["PT-OMD"]
        handover = tmp_path / "national-no-helsedir"
        for name in ("NO-HELSEDIR.key", "NO-HELSEDIR.pem", "node-ca.pem"):
            shutil.copy(handover / name, tmp_path / name)
        shutil.copy(EXAMPLES / "request.xml", tmp_path / "request.xml")

        hosts = {
            "https://gateway.example.no:8443": f"https://127.0.0.1:{nodes['NO'].setup.api_port}",
            "https://gateway.example.pt:9443": f"https://127.0.0.1:{nodes['PT'].setup.peer_port}",
            "http://127.0.0.1:9100": f"http://127.0.0.1:{nodes['NO'].setup.metrics_port}",
        }
        # `imi-gateway` is the one of this interpreter; no ~/.curlrc.
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = dict(os.environ, CURL_HOME=str(tmp_path), PATH=path)
        answers: dict[str, str] = {}
        proposed = False
        for example in found:
            command = example.command
            for documented, real in hosts.items():
                command = command.replace(documented, real)
            if "/api/v1/deliveries?" in command and not proposed:
                await play_reply_date_proposal(omd, helsedir)
                proposed = True
            if "@envelope.xml" in command and not (tmp_path / "envelope.xml").exists():
                signed = (tmp_path / "request-signed.xml").read_bytes()
                (tmp_path / "envelope.xml").write_bytes(
                    signed_envelope(nodes["NO"].setup.node_dir, signed, f"{EXCHANGE}-1")
                )
            out, err, code = await utils.getProcessOutputAndValue(
                "/bin/sh", ["-c", command], env=env, path=str(tmp_path)
            )
            output = out.decode("utf-8")
            if example.kind == "text" and example.expected.startswith("curl: ("):
                assert code != 0 and output == "", (example.line, output[:300])
                assert err.decode().startswith("curl: ("), (example.line, err)
                continue
            assert code == 0, (example.line, output[:300], err.decode())
            if example.kind == "text":
                check_text(example, output + err.decode("utf-8"))
                continue
            body = check_http(example, output)
            if "--data-binary" in command:
                # The same bytes posted again: the same answer, byte for byte.
                if command in answers:
                    assert body == answers[command], example.line
                answers[command] = body
                if "@request-signed.xml" in command:
                    await wait_for_delivery(omd, f"{EXCHANGE}-1")
        assert proposed and len(answers) >= 3
