"""``imi-gateway run`` as a supervised process: systemd notifications, one process per node
directory, readiness apart from liveness, and a failed start that starts nothing."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from gateway.node_ports import read_ports_file
from gateway.testbed import set_peer_url, setup_nodes

GATEWAY = [sys.executable, "-m", "gateway"]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _add_untrusted_peer(node_dir: Path, url: str) -> None:
    """A ``[[peers]]`` entry whose bundle was never imported: the node is live but not ready."""
    with (node_dir / "gateway.toml").open("a") as toml:
        toml.write(f'\n[[peers]]\nid = "PT"\nurl = "{url}"\n')


def test_systemd_hears_ready_reloading_and_stopping_and_a_second_run_is_refused(
    tmp_path: Path,
) -> None:
    setup = setup_nodes(tmp_path, {"NO": ["NO-HELSEDIR"]})["NO"]
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = f"@imi-gateway-test-{secrets.token_hex(8)}"
    notify.bind("\0" + address[1:])
    notify.settimeout(60)  # a bound on a wait for the node's own message, never a sleep
    proc = subprocess.Popen(
        [*GATEWAY, "run", str(setup.node_dir), "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NOTIFY_SOCKET": address},
    )
    try:
        ready = notify.recv(4096).decode()
        assert ready.splitlines()[0] == "READY=1" and "STATUS=Node NO running" in ready
        ports = read_ports_file(setup.node_dir)  # written before READY=1
        assert ports is not None and ports.pid == proc.pid
        assert not (setup.node_dir / "gateway.pid").exists()  # one pid record: ports.json
        base = f"http://127.0.0.1:{ports.metrics}"
        assert _get(base + "/ready") == (200, "ready\n")
        assert _get(base + "/health") == (200, "ok\n")

        second = subprocess.run(
            [*GATEWAY, "run", str(setup.node_dir)], capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 3
        assert second.stderr.startswith("error: NODE_ALREADY_RUNNING: ")
        assert read_ports_file(setup.node_dir) == ports  # the running node's record is intact

        proc.send_signal(signal.SIGHUP)
        reloading = notify.recv(4096).decode().splitlines()
        assert reloading[0] == "RELOADING=1" and reloading[1].startswith("MONOTONIC_USEC=")
        assert notify.recv(4096) == b"READY=1"

        proc.send_signal(signal.SIGTERM)
        assert notify.recv(4096) == b"STOPPING=1"
        out, err = proc.communicate(timeout=60)
    finally:
        notify.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    for line in lines:  # the JSON log: one object a line, the shippers' fields, no junk
        assert {"time", "level", "logger", "message"} <= set(line)
        assert not [key for key in line if key.startswith("log_")], line
        assert "unpersistable" not in json.dumps(line)
    info = [line["message"] for line in lines if line["level"] != "debug"]
    assert not [m for m in info if m.startswith(("Starting factory", "Stopping factory"))]
    assert any(m.startswith("Trust reloaded") for m in info)
    # After the node stopped, a new one may start on the directory (the lock went with it).
    assert read_ports_file(setup.node_dir) is None


def test_a_node_without_a_peers_trust_is_live_but_not_ready(tmp_path: Path) -> None:
    setup = setup_nodes(tmp_path, {"NO": ["NO-HELSEDIR"]})["NO"]
    _add_untrusted_peer(setup.node_dir, "https://127.0.0.1:9/")
    proc = subprocess.Popen(
        [*GATEWAY, "run", str(setup.node_dir), "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if json.loads(line)["message"].startswith("Node NO running"):
                break
        else:
            raise AssertionError(f"the node exited early: {proc.stderr.read()}")  # type: ignore[union-attr]
        ports = read_ports_file(setup.node_dir)
        assert ports is not None
        base = f"http://127.0.0.1:{ports.metrics}"
        assert _get(base + "/health") == (200, "ok\n")
        status, body = _get(base + "/ready")
        assert status == 503
        assert body == "not ready\nPEER_TRUST_MISSING: no trust is loaded for peer PT\n"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0


def test_a_port_in_use_stops_the_start_before_any_service_runs(tmp_path: Path) -> None:
    setups = setup_nodes(tmp_path, {"NO": ["NO-HELSEDIR"], "PT": ["PT-OMD"]})
    node_dir = setups["NO"].node_dir
    # Both stay bound and listening for the whole test (no port is picked and released):
    # busy holds the API's port; PT's URL points at peer_sink, so a directory sync or a
    # sender that started would connect there.
    with (
        socket.create_server(("127.0.0.1", 0)) as busy,
        socket.create_server(("127.0.0.1", 0)) as peer_sink,
    ):
        peer_sink.setblocking(False)
        toml = node_dir / "gateway.toml"
        text = toml.read_text()
        lines = text.splitlines()
        api = lines.index("[api]")
        port_line = next(i for i in range(api, len(lines)) if lines[i].startswith("port ="))
        lines[port_line] = f"port = {busy.getsockname()[1]}"
        toml.write_text("\n".join(lines) + "\n")
        set_peer_url(node_dir, "PT", f"https://127.0.0.1:{peer_sink.getsockname()[1]}")
        done = subprocess.run(
            [*GATEWAY, "run", str(node_dir), "--log-format", "json", "--log-level", "debug"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 3
        assert "error: STARTUP_FAILED: " in done.stderr
        try:
            peer_sink.accept()
            connected = True
        except BlockingIOError:
            connected = False
        assert not connected, "a service contacted the peer before the start failed"
    loggers = {json.loads(line)["logger"] for line in done.stdout.splitlines()}
    assert not [name for name in loggers if name.startswith("gateway.service")], loggers
    assert read_ports_file(node_dir) is None
