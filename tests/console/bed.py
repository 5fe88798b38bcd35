"""A real node with its admin console, in a subprocess, for the console tests.

Node NO runs ``imi-gateway run`` with ``[console] enabled`` on port 0 (the
port comes from ports.json); its peer PT is set up but never started, so a
document for PT fails at once and (``max_attempts = 1``) becomes a dead
letter. Users of each role are added with ``imi-gateway users add``.
"""

from __future__ import annotations

import http.client
import os
import signal
import ssl
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gateway.core.certs import load_pem_certificate, load_pem_private_key
from gateway.core.documents import to_xml
from gateway.core.signing import Signer
from gateway.keystore import node_paths
from gateway.node_ports import NodePorts, wait_for_ports_file
from gateway.storage.db import Database
from gateway.storage.outbox import dead_letters_txn
from gateway.testbed import NodeSetup, doctor_request, setup_nodes
from gateway.testbed.nodes import before_start, node_started, signal_reload
from tests.waiting import until_sync

PASSWORDS = {
    "olga": "operator-password-1",
    "ada": "auditor-password-1",
    "kari": "coordinator-password-1",
}
ROLE_OF = {"olga": "operator", "ada": "auditor", "kari": "coordinator"}
USER_OF = {role: user for user, role in ROLE_OF.items()}
#: The national coordinator of node NO; user kari acts for it (with a console key).
COORDINATOR = "NO-KOORDINATOR"

CONSOLE_CONFIG = """
[console]
enabled = true
port = 0
login_attempts = 5
[metrics]
refresh_seconds = 1
[outbound]
max_attempts = 1
initial_backoff_seconds = 0.05
max_backoff_seconds = 0.1
"""


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@dataclass
class ConsoleBed:
    setup: NodeSetup
    process: subprocess.Popen[bytes]
    ports: NodePorts
    base: Path
    log: Path
    exchanges: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.ports.console}"

    def _api_context(self) -> ssl.SSLContext:
        creds = self.setup.authorities["NO-HELSEDIR"]
        ctx = ssl.create_default_context(cafile=str(node_paths(self.setup.node_dir).cert("ca")))
        ctx.load_cert_chain(str(creds.certificate_path), str(creds.key_path))
        return ctx

    def api(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """A request of national system NO-HELSEDIR to the node's API (client certificate)."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.ports.api, context=self._api_context())
        try:
            conn.request(method, path, body=body)
            answer = conn.getresponse()
            return answer.status, answer.read()
        finally:
            conn.close()

    def submit_request(self, exchange_id: str) -> None:
        """NO-HELSEDIR asks PT-OMD (PT never runs: the document becomes a dead letter)."""
        creds = self.setup.authorities["NO-HELSEDIR"]
        signer = Signer(
            load_pem_private_key(creds.key_path.read_bytes()),
            load_pem_certificate(creds.certificate_path.read_bytes()),
        )
        request = doctor_request(exchange_id, "NO-HELSEDIR", "PT-OMD", datetime.now(UTC))
        status, body = self.api("POST", "/api/v1/documents", signer.sign(to_xml(request)))
        assert status == 200, body[:300]
        self.exchanges.append(exchange_id)

    def dead_letters(self) -> list[object]:
        db = Database(
            f"sqlite:///{self.setup.node_dir / 'gateway.sqlite3'}", reactor=None, threads=1
        )
        try:
            return db.run_txn_sync(dead_letters_txn)
        finally:
            db.engine.dispose()

    def search(self, words: str) -> bytes:
        query = urllib.parse.urlencode({"q": words, "country": "NO"})
        status, body = self.api("GET", f"/api/v1/authorities?{query}")
        assert status == 200, body[:300]
        return body

    def stop(self) -> None:
        stop_process(self.process)


def start_node_process(
    setup: NodeSetup, base: Path
) -> tuple[subprocess.Popen[bytes], NodePorts, Path]:
    """Run ``imi-gateway run`` for ``setup`` until it reports its ports; the bed is told
    (the bed's running nodes learn its peer URL, it reloads theirs on SIGHUP)."""
    before_start(setup)
    log = base / f"node-{setup.node_id.lower()}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", str(setup.node_dir)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        ports = wait_for_ports_file(
            setup.node_dir, process.pid, alive=lambda: process.poll() is None
        )
    except Exception:
        process.kill()
        raise AssertionError(log.read_text(errors="replace")[-3000:]) from None
    node_started(setup, ports, signal_reload(process.pid))
    return process, ports, log


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_console_bed(base: Path) -> ConsoleBed:
    setups = setup_nodes(
        base, {"NO": ["NO-HELSEDIR"], "PT": ["PT-OMD"]}, extra_config={"NO": CONSOLE_CONFIG}
    )
    setup = setups["NO"]
    # Published in the directory, as an operator does after issue-national (docs/operator.md):
    # once the console registers another authority, only published ones may submit.
    done = cli(
        "authorities", "add", str(setup.node_dir), "NO-HELSEDIR",
        "--name", "nb:Helsedirektoratet", "--name", "en:Norwegian Directorate of Health",
        "--address", "Postboks 220 Skøyen", "--city", "Oslo", "--profession", "doctor",
        "--language", "nb",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = cli(
        "coordinators",
        "add",
        str(setup.node_dir),
        COORDINATOR,
        "--name",
        "Nasjonal IMI-koordinator",
        "--national",
        "--out",
        str(base / "coordinator-no"),
    )
    assert done.returncode == 0, done.stderr
    for user, role in ROLE_OF.items():
        extra = ["--coordinator", COORDINATOR, "--console-key"] if role == "coordinator" else []
        done = cli(
            "users",
            "add",
            str(setup.node_dir),
            user,
            "--role",
            role,
            *extra,
            stdin=PASSWORDS[user] + "\n",
        )
        assert done.returncode == 0, done.stderr
    process, ports, log = start_node_process(setup, base)
    assert ports.console, "the console reported no port"
    bed = ConsoleBed(setup, process, ports, base, log)
    bed.submit_request("NO-HELSEDIR:2026-000901")
    until_sync(lambda: len(bed.dead_letters()) >= 1, timeout=60)
    return bed


__all__ = [
    "COORDINATOR",
    "PASSWORDS",
    "ROLE_OF",
    "USER_OF",
    "ConsoleBed",
    "cli",
    "start_console_bed",
    "start_node_process",
    "stop_process",
]
