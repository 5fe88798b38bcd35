"""Peers and trust actions of the console: add a peer, revoke a certificate, rotate keys.

A console bed of its own (the actions change the node's trust, which the
session's shared bed must keep).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator

import pytest

from gateway.core.certs import fingerprint, load_pem_certificate
from gateway.keystore.errors import PeerBundleInvalid, RevocationTargetUnknown
from tests.console.bed import USER_OF, ConsoleBed, cli, start_console_bed
from tests.console.conftest import Client

ACTIONS = ("peers/add", "peers/revoke", "peers/rotate")


@pytest.fixture(scope="module")
def peers_bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleBed]:
    running = start_console_bed(tmp_path_factory.mktemp("console-peers"))
    try:
        yield running
    finally:
        running.stop()


def _operator(bed: ConsoleBed) -> tuple[Client, str]:
    client = Client(bed)
    assert client.login(USER_OF["operator"]) == 303
    return client, client.csrf()


def _api_status(bed: ConsoleBed) -> tuple[int, bytes]:
    return bed.api("GET", "/api/v1/authorities?q=x&country=NO")


def test_an_operator_revokes_a_national_systems_certificate_and_the_api_refuses_it(
    peers_bed: ConsoleBed,
) -> None:
    creds = peers_bed.setup.authorities["NO-HELSEDIR"]
    fp = fingerprint(load_pem_certificate(creds.certificate_path.read_bytes()))
    assert _api_status(peers_bed)[0] == 200
    client, token = _operator(peers_bed)
    status, headers, _ = client.request(
        "POST", "/peers/revoke", {"csrf": token, "fingerprint": fp.upper()}
    )
    assert status == 303 and "flash.revoked" in headers["location"]
    status, _, page = client.request("GET", "/peers")
    assert status == 200
    revoked = re.search(r'<ul id="revoked">(.*?)</ul>', page, re.S)
    assert revoked and fp in revoked.group(1)
    # The documented refusal of a client certificate the node no longer trusts.
    status, body = _api_status(peers_bed)
    assert status == 401 and b"CLIENT_CERTIFICATE_UNKNOWN" in body, body[:300]
    status, _, page = client.request("GET", "/audit")
    assert status == 200 and f"certificate-revoked:{fp}" in html.unescape(page)


def test_a_bad_fingerprint_and_a_bad_bundle_are_refused_with_their_codes(
    peers_bed: ConsoleBed,
) -> None:
    client, token = _operator(peers_bed)
    status, _, page = client.request("POST", "/peers/revoke", {"csrf": token, "fingerprint": "x"})
    assert status == RevocationTargetUnknown.http_status and "REVOCATION_TARGET_UNKNOWN" in page
    status, _, page = client.request("POST", "/peers/add", {"csrf": token, "bundle": "{}"})
    assert status == PeerBundleInvalid.http_status and "PEER_BUNDLE_INVALID" in page


def test_an_operator_adds_a_peer_from_its_bundle_with_a_new_url(peers_bed: ConsoleBed) -> None:
    pt = peers_bed.setup.bed["PT"]
    exported = cli("keys", "export", str(pt.node_dir))
    assert exported.returncode == 0, exported.stderr
    client, token = _operator(peers_bed)
    url = "https://pt.example.invalid:8443"
    status, headers, _ = client.request(
        "POST", "/peers/add", {"csrf": token, "bundle": exported.stdout, "url": url}
    )
    assert status == 303 and "flash.peer_imported" in headers["location"], headers
    shown = cli("keys", "show", str(peers_bed.setup.node_dir), "--json")
    peers = {p["id"]: p["url"] for p in json.loads(shown.stdout)["peers"]}
    assert peers["PT"] == url
    status, headers, _ = client.request(
        "POST", "/peers/add", {"csrf": token, "bundle": exported.stdout, "url": url}
    )
    assert status == 303 and "flash.peer_unchanged" in headers["location"]


def test_an_operator_rotates_the_node_keys_and_sees_the_new_fingerprints(
    peers_bed: ConsoleBed,
) -> None:
    before = json.loads(cli("keys", "show", str(peers_bed.setup.node_dir), "--json").stdout)
    old = {c["role"]: c["sha256"] for c in before["certificates"]}
    client, token = _operator(peers_bed)
    status, _, page = client.request("POST", "/peers/rotate", {"csrf": token, "overlap_days": "7"})
    assert status == 200, page[-500:]
    after = json.loads(cli("keys", "show", str(peers_bed.setup.node_dir), "--json").stdout)
    new = {c["role"]: c["sha256"] for c in after["certificates"]}
    for role in ("signing", "tls"):
        assert new[role] != old[role]
        assert new[role] in page and old[role] in page
    assert "imi-gateway keys export" in html.unescape(page)


@pytest.mark.parametrize("role", ["auditor", "coordinator"])
def test_auditors_and_coordinators_are_refused_the_peer_actions(
    peers_bed: ConsoleBed, role: str
) -> None:
    client = Client(peers_bed)
    assert client.login(USER_OF[role]) == 303
    token = client.csrf()
    for path in ACTIONS:
        fields = {"csrf": token, "fingerprint": "a" * 64, "overlap_days": "7", "bundle": "{}"}
        status, _, _ = client.request("POST", f"/{path}", fields)
        assert status == 403, (path, role, status)
