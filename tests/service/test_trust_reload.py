"""Trust changes reach a running node without a restart.

Two real nodes (NO, PT) on loopback. On the running NO node, through the one
reload entry point (``NodeParts.reload_trust``, which SIGHUP and
``imi-gateway reload`` call):

* a revoked national system can no longer submit, pull or read tracking, and
  its open keep-alive connection is closed at the reload;
* a newly issued national system can submit;
* a newly imported peer node is accepted on the peer API.

A last test runs ``imi-gateway run`` as a process and checks the CLI path:
``keys revoke`` and ``keys issue-national`` signal the running node (pid
file, SIGHUP), which then refuses the revoked certificate and serves the new
one within seconds; ``imi-gateway reload`` says when no node runs.
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest_twisted
from twisted.internet import reactor

from gateway.core.certs import load_pem_certificate
from gateway.core.documents import to_xml
from gateway.keystore import (
    export_node_bundle,
    import_peer,
    issue_national_certificate,
    load_node_keys,
    revoke,
)
from gateway.node_ports import read_ports_file
from gateway.storage.directory_files import DirectoryStore
from gateway.testbed import (
    NationalCredentials,
    NationalSystem,
    NationalSystemError,
    doctor_request,
    setup_nodes,
)
from gateway.transport.tls import connection_certificate
from tests.nodes import RunningNode, two_nodes
from tests.service.bed import raw_client
from tests.waiting import until

AUTHORITIES = {"NO": ["NO-HELSEDIR", "NO-UDIR"], "PT": ["PT-OMD"]}


def signed_request(system: NationalSystem, exchange_id: str) -> bytes:
    doc = doctor_request(
        exchange_id, system.authority_id, "PT-OMD", datetime.now(UTC), free_text=False
    )
    return system.sign(to_xml(doc))


async def start_up_sync_done(node: RunningNode) -> None:
    """Wait for the start-up directory synchronisation (which also reloads trust)."""
    store = DirectoryStore(node.setup.node_dir)
    sync = next(s for s in node.service if type(s).__name__ == "DirectorySyncService")
    # The cache is written off the reactor; the reload follows on it when the sync is over.
    await until(lambda: "PT" in store.cached_peers() and not sync.busy)


async def refused_code(call: object) -> str:
    try:
        await call  # type: ignore[misc]
    except NationalSystemError as error:
        assert error.status == 401
        return error.remote_code
    raise AssertionError("the node served a caller it must refuse")


@pytest_twisted.ensureDeferred
async def test_a_revoked_national_system_is_refused_and_disconnected_after_a_reload(
    tmp_path,
) -> None:
    async with two_nodes(tmp_path, AUTHORITIES) as (nodes, systems):
        no = nodes["NO"]
        udir = systems["NO-UDIR"]
        await udir.submit(signed_request(udir, "IMI-NO-RELOAD-1"))
        await udir.pull()
        await udir.tracking("NO-UDIR:IMI-NO-RELOAD-1")
        udir_cert = load_pem_certificate(
            no.setup.authorities["NO-UDIR"].certificate_path.read_bytes()
        )

        def udir_connections() -> int:
            return sum(
                1
                for channel in no.parts.api.site.channels
                if connection_certificate(channel.transport) == udir_cert
            )

        def pooled() -> int:  # keep-alive connections the national system holds open
            cached = udir.client._pool._connections.values()
            return sum(1 for conns in cached for c in conns if c.state == "QUIESCENT")

        # The keep-alive connection of its last call.
        assert udir_connections() == 1 and pooled() == 1

        revoke(no.setup.node_dir, "NO-UDIR")
        changes = no.parts.reload_trust()
        assert changes.revoked_added == 1 and changes.national_removed == 1
        await until(lambda: udir_connections() == 0 and pooled() == 0)

        assert await refused_code(udir.submit(signed_request(udir, "IMI-NO-RELOAD-2"))) == (
            "CLIENT_CERTIFICATE_UNKNOWN"
        )
        assert await refused_code(udir.pull()) == "CLIENT_CERTIFICATE_UNKNOWN"
        assert await refused_code(udir.tracking("NO-UDIR:IMI-NO-RELOAD-1")) == (
            "CLIENT_CERTIFICATE_UNKNOWN"
        )
        # Others are not affected.
        helsedir = systems["NO-HELSEDIR"]
        await helsedir.submit(signed_request(helsedir, "IMI-NO-RELOAD-3"))


@pytest_twisted.ensureDeferred
async def test_a_newly_issued_national_system_can_submit_after_a_reload(tmp_path) -> None:
    async with two_nodes(tmp_path, AUTHORITIES) as (nodes, _):
        no = nodes["NO"]
        await start_up_sync_done(no)
        issued = issue_national_certificate(no.setup.node_dir, "NO-NAV", tmp_path / "nav")
        no.setup.authorities["NO-NAV"] = NationalCredentials(
            "NO-NAV", issued.key_path, issued.certificate_path
        )
        nav = NationalSystem(reactor, no.setup, "NO-NAV")
        try:
            # Before the reload the running node does not know it.
            assert await refused_code(nav.pull()) == "CLIENT_CERTIFICATE_UNKNOWN"
            changes = no.parts.reload_trust()
            assert changes.national_added == 1 and changes.national_total == 3
            receipt = await nav.submit(signed_request(nav, "IMI-NO-RELOAD-4"))
            assert receipt.issuer_node == "NO"
        finally:
            await nav.close()


@pytest_twisted.ensureDeferred
async def test_a_newly_imported_peer_is_accepted_and_sent_to_after_a_reload(tmp_path) -> None:
    async with two_nodes(tmp_path, AUTHORITIES) as (nodes, _):
        no = nodes["NO"]
        await start_up_sync_done(no)
        ee = setup_nodes(tmp_path / "ee", {"EE": ["EE-TA"]})["EE"]
        ee_keys, no_keys = load_node_keys(ee.node_dir), load_node_keys(no.setup.node_dir)
        client = raw_client(
            ee_keys.tls.key,
            ee_keys.tls.certificate,
            no.setup.peer_port,
            no_keys.ca.certificate,
            no_keys.tls.certificate,
        )
        url = f"https://127.0.0.1:{no.setup.peer_port}/peer/v1/directory"
        try:
            import_peer(no.setup.node_dir, export_node_bundle(ee.node_dir))
            # Not yet: the running node's peer listener does not know EE's CA.
            try:
                answer = await client.get(url)
            except Exception:
                pass  # refused at the TLS handshake
            else:
                assert answer.status == 401
            await client.close()
            changes = no.parts.reload_trust()
            assert changes.peers_added == 1
            answer = await client.get(url)
            assert answer.status == 200
            # And NO sends to it: its outbound queue runs, at the URL of its bundle.
            sender = no.parts.senders["EE"]
            assert sender.running and sender.peer_id == "EE"
        finally:
            await client.close()


def _ssl_context(node_dir: Path, key_path: Path, cert_path: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=(node_dir / "certs" / "ca.pem").read_text())
    context.load_cert_chain(cert_path, key_path)
    return context


def _status(url: str, context: ssl.SSLContext) -> int:
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_keys_revoke_reaches_the_running_node_through_its_recorded_pid_and_sighup(tmp_path) -> None:
    setup = setup_nodes(tmp_path, {"NO": ["NO-HELSEDIR", "NO-UDIR"]})["NO"]
    creds = setup.authorities["NO-UDIR"]
    context = _ssl_context(setup.node_dir, creds.key_path, creds.certificate_path)
    gateway = [sys.executable, "-m", "gateway"]
    proc = subprocess.Popen(
        [*gateway, "run", str(setup.node_dir), "--log-format", "json"],
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
            raise AssertionError("the node exited early")
        assert not (setup.node_dir / "gateway.pid").exists()  # one record: ports.json
        ports = read_ports_file(setup.node_dir)
        assert ports is not None and ports.pid == proc.pid
        url = f"https://127.0.0.1:{ports.api}/api/v1/deliveries"
        assert _status(url, context) == 200

        done = subprocess.run(
            [*gateway, "keys", "revoke", str(setup.node_dir), "NO-UDIR"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"Told the running node (pid {proc.pid})" in done.stdout
        deadline = time.monotonic() + 10
        while _status(url, context) != 401:  # wait for the reload (a few ms in practice)
            assert time.monotonic() < deadline, "the revocation did not reach the running node"
        for line in proc.stdout:
            if json.loads(line)["message"].startswith("Trust reloaded"):
                break

        # A national system issued while the node runs is served without a restart.
        nav_dir = tmp_path / "nav"
        done = subprocess.run(
            [*gateway, "keys", "issue-national", str(setup.node_dir), "NO-NAV", "--out", nav_dir],
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"Told the running node (pid {proc.pid})" in done.stdout
        nav = _ssl_context(setup.node_dir, nav_dir / "NO-NAV.key", nav_dir / "NO-NAV.pem")
        deadline = time.monotonic() + 10
        while _status(url, nav) != 200:
            assert time.monotonic() < deadline, "the new national system is still refused"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert read_ports_file(setup.node_dir) is None
    reload = subprocess.run(
        [*gateway, "reload", str(setup.node_dir)], capture_output=True, text=True
    )
    assert reload.returncode == 1 and "no node is running" in reload.stderr


def test_reload_of_a_directory_that_is_not_a_node_is_a_configuration_error(tmp_path) -> None:
    from gateway.cli import main

    code = main(["reload", str(tmp_path / "nowhere")])
    assert code == 3  # CONFIG_NOT_FOUND, as for every command given a wrong NODE_DIR
