"""docs/examples/java/ImiClient.java signs, submits and verifies a receipt, as docs/client.md says.

Runs the ```sh commands of docs/client.md's Java section (openssl makes the
PKCS#12 key store, the JDK's single-file launcher runs the example) against
two real nodes, and checks the documented output; then the Portuguese side
receives the document the JDK signed, verified by its node. The JDK's own
XML-DSig implementation is an independent oracle of our signature profile:
our verifier accepts what it signs, and it verifies what our node signs.
Skipped without a JDK, a failure in CI.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest_twisted
from twisted.internet import utils

from tests.conftest import require_tool
from tests.nodes import two_nodes
from tests.test_api_docs import wait_for_delivery

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXAMPLE = DOCS / "examples" / "java" / "ImiClient.java"


def java_section() -> tuple[list[str], list[str]]:
    """The commands and the documented output of docs/client.md's Java section."""
    text = (DOCS / "client.md").read_text(encoding="utf-8")
    section = text[text.index("## Java") :]
    commands = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    output = re.search(r"```text\n(.*?)```", section, flags=re.S)
    assert commands is not None and output is not None
    return commands.group(1).strip().splitlines(), output.group(1).strip().splitlines()


@pytest_twisted.ensureDeferred
async def test_the_java_example_signs_submits_and_verifies_the_receipt(tmp_path) -> None:
    require_tool("java")
    require_tool("openssl")
    commands, expected = java_section()
    async with two_nodes(tmp_path) as (nodes, systems):
        work = tmp_path / "java"
        work.mkdir()
        for name in ("NO-HELSEDIR.key", "NO-HELSEDIR.pem", "node-ca.pem"):
            shutil.copy(tmp_path / "national-no-helsedir" / name, work / name)
        shutil.copy(DOCS / "examples" / "request.xml", work / "request.xml")
        shutil.copy(EXAMPLE, work / EXAMPLE.name)
        output = ""
        for command in commands:
            command = command.replace("https://gateway.example.no:8443", nodes["NO"].setup.api_url)
            out, err, code = await utils.getProcessOutputAndValue(
                "/bin/sh", ["-c", command], env=dict(os.environ), path=str(work)
            )
            assert code == 0, (command, out.decode(), err.decode())
            output += out.decode()
        lines = output.splitlines()
        for want in expected:
            prefix = want.removesuffix("…").rstrip()
            assert any(line.startswith(prefix) for line in lines), (want, output)
        await wait_for_delivery(systems["PT-OMD"], "NO-HELSEDIR:2026-000417-1")


@pytest_twisted.ensureDeferred
async def test_the_java_example_reports_a_refusal_with_the_nodes_code(tmp_path) -> None:
    require_tool("java")
    require_tool("openssl")
    commands, _ = java_section()
    async with two_nodes(tmp_path) as (nodes, _systems):
        work = tmp_path / "java"
        work.mkdir()
        for name in ("NO-HELSEDIR.key", "NO-HELSEDIR.pem", "node-ca.pem"):
            shutil.copy(tmp_path / "national-no-helsedir" / name, work / name)
        # A document for an authority whose country is no peer of the node.
        request = (DOCS / "examples" / "request.xml").read_bytes()
        (work / "request.xml").write_bytes(request.replace(b"PT-OMD", b"SE-SOS"))
        shutil.copy(EXAMPLE, work / EXAMPLE.name)
        codes = []
        for command in commands:
            command = command.replace("https://gateway.example.no:8443", nodes["NO"].setup.api_url)
            out, err, code = await utils.getProcessOutputAndValue(
                "/bin/sh", ["-c", command], env=dict(os.environ), path=str(work)
            )
            codes.append(code)
        assert codes == [0, 1], (out.decode(), err.decode())
        assert out.decode().strip() == "refused: HTTP 400 RECEIVER_NODE_UNKNOWN"
