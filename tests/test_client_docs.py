"""docs/client.md runs as written: its Python blocks, as one script, against two real nodes.

(The Java section's commands are run by tests/test_java_example.py.)
The script runs in its own process in the directory of NO-HELSEDIR's
handed-over files and a copy of docs/examples/request.xml; meanwhile PT-OMD
receives the request and answers with docs/examples/reply-date-proposal.xml,
which the script's long poll then receives. Every line of the
```text blocks that follow Python blocks must be in the script's output, in
order.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import sys
from pathlib import Path

import pytest_twisted
from twisted.internet import utils

from gateway.client import with_created
from gateway.core.xmlparse import parse_xml
from tests.nodes import two_nodes
from tests.test_api_docs import wait_for_delivery

DOC = Path(__file__).resolve().parents[1] / "docs" / "client.md"
EXAMPLES = DOC.parent / "examples"


def script_and_output() -> tuple[str, list[str]]:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)
    script = "\n".join(body for kind, body in blocks if kind == "python")
    lines = [
        line
        for (before, _), (kind, body) in itertools.pairwise(blocks)
        if kind == "text" and before == "python"
        for line in body.splitlines()
    ]
    return script, lines


def test_the_page_has_a_script_and_its_output() -> None:
    script, lines = script_and_output()
    compile(script, str(DOC), "exec")
    assert "client.submit(" in script and "client.pull(" in script and lines


@pytest_twisted.ensureDeferred
async def test_the_client_examples_run_as_written(tmp_path) -> None:
    script, expected = script_and_output()
    async with two_nodes(tmp_path) as (nodes, systems):
        work = tmp_path / "work"
        work.mkdir()
        for name in ("NO-HELSEDIR.key", "NO-HELSEDIR.pem", "node-ca.pem"):
            shutil.copy(tmp_path / "national-no-helsedir" / name, work / name)
        shutil.copy(EXAMPLES / "request.xml", work / "request.xml")
        script = script.replace("https://gateway.example.no:8443", nodes["NO"].setup.api_url)
        (work / "example.py").write_text(script, encoding="utf-8")
        running = utils.getProcessOutputAndValue(
            sys.executable, ["example.py"], env=dict(os.environ), path=str(work)
        )
        omd = systems["PT-OMD"]
        await wait_for_delivery(omd, "NO-HELSEDIR:2026-000417-1")
        proposal = parse_xml((EXAMPLES / "reply-date-proposal.xml").read_bytes())
        await omd.submit(omd.sign(with_created(proposal)))
        out, err, code = await running
    output = out.decode("utf-8").splitlines()
    assert code == 0, (out.decode(), err.decode())
    assert [line for line in output if line in expected] == expected, output
    assert (work / "document-1.xml").read_bytes().find(b"<ReplyDateProposal") >= 0
