"""``imi-gateway demo --console``: both nodes keep running with sample data; Ctrl-C stops them.

The demo runs in a subprocess; the test reads the consoles' addresses and the
printed logins, logs in over HTTPS as the operator and the coordinator of NO,
finds the dead letter and the late, escalated exchange, then sends SIGINT.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.console.conftest import Client


@dataclass
class _Ports:
    console: int


@dataclass
class _Console:
    ports: _Ports


def _read_until_ready(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            return "".join(lines)
    raise AssertionError("the demo ended early:\n" + "".join(lines))


def test_demo_console_keeps_both_nodes_running_with_sample_data_until_ctrl_c(
    tmp_path: Path,
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--console", "--keep", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        printed = _read_until_ready(process)
        consoles = dict(re.findall(r"Console (NO|PT): https://127\.0\.0\.1:(\d+)/", printed))
        assert set(consoles) == {"NO", "PT"}
        logins = dict(re.findall(r"login (\w+) / (\S+)  \(", printed))
        assert set(logins) == {"operator", "koordinator", "operador", "coordenador"}

        operator = Client(_Console(_Ports(int(consoles["NO"]))))  # type: ignore[arg-type]
        assert operator.login("operator", logins["operator"]) == 303
        status, _, page = operator.request("GET", "/dashboard")
        assert status == 200
        dead = re.search(r'id="dead-count">(\d+)<', page)
        assert dead and int(dead.group(1)) >= 1
        status, _, page = operator.request("GET", "/queues")
        assert "NO-HELSEDIR:2026-000101" in page

        coordinator = Client(_Console(_Ports(int(consoles["NO"]))))  # type: ignore[arg-type]
        assert coordinator.login("koordinator", logins["koordinator"]) == 303
        status, _, page = coordinator.request("GET", "/coordinator?view=escalated")
        assert status == 200 and "NO-HELSEDIR:2026-000104" in page
        status, _, page = coordinator.request("GET", "/coordinator?view=disputed")
        assert "NO-HELSEDIR:2026-000103" in page

        # The Portuguese coordinator sees the escalation too (it reached the other country)
        pt = Client(_Console(_Ports(int(consoles["PT"]))))  # type: ignore[arg-type]
        assert pt.login("coordenador", logins["coordenador"]) == 303
        status, _, page = pt.request("GET", "/coordinator?view=escalated")
        assert status == 200 and "NO-HELSEDIR:2026-000104" in page
    finally:
        process.send_signal(signal.SIGINT)
        try:
            rest, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, rest[-2000:]
    assert "Stopped both nodes." in rest
