"""`imi-gateway run`: JSON logs, a health endpoint, and a clean exit on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

from gateway.node_ports import read_ports_file
from gateway.testbed import setup_nodes


def test_node_runs_logs_json_answers_health_and_stops_cleanly_on_sigterm(tmp_path) -> None:
    setup = setup_nodes(tmp_path, {"NO": ["NO-HELSEDIR"]})["NO"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", str(setup.node_dir), "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    events = []
    try:
        for line in proc.stdout:  # blocks until the node logs; ends if it dies
            event = json.loads(line)  # every line is one JSON event
            events.append(event)
            if event["message"].startswith("Node NO running"):
                break
        else:
            raise AssertionError(f"the node exited early: {proc.stderr.read()}")
        # Every listener on port 0: the node reports the ports it bound, in its log and file.
        ports = read_ports_file(setup.node_dir)
        assert ports is not None and ports.pid == proc.pid
        bound = {e["name"]: e["port"] for e in events if "listening on" in e["message"]}
        assert bound == {
            "national-system API": ports.api,
            "peer API": ports.peer,
            "health and metrics": ports.metrics,
        }
        assert 0 not in bound.values()
        health = urllib.request.urlopen(f"http://127.0.0.1:{ports.metrics}/health", timeout=10)
        assert health.status == 200 and health.read() == b"ok\n"
        metrics = urllib.request.urlopen(
            f"http://127.0.0.1:{ports.metrics}/metrics", timeout=10
        ).read()
        assert b"imi_documents_accepted_total" in metrics
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert read_ports_file(setup.node_dir) is None  # removed at the clean stop
    for line in rest.splitlines():
        events.append(json.loads(line))
    assert any("Main loop terminated" in e["message"] for e in events)
