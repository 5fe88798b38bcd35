"""Every route of every listener, as ``build_node`` builds them, refuses callers it must not serve.

The test walks the resource trees of the node's listeners (so a route added
later is covered without editing this file) and calls each route with each
method over real TLS on loopback, presenting:

* a certificate from an unknown CA (claiming the right identity),
* a revoked certificate (a national system revoked at the node; a peer node
  whose TLS certificate the node revoked),
* an expired certificate (issued by the right CA and registered),
* a certificate of the wrong kind (the node's own TLS certificate on the
  national API; a peer's national-system certificate, same CA as the peer
  node, on the peer API),

and checks each is refused (TLS handshake failure, or 401/403 with an Error
document) while the right certificate is never refused by the guard. The
plain-HTTP health listener has no client authentication by design: its
routes must be exactly the documented public allow-list, anything else 404.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.web.resource import Resource

from gateway.core import pki
from gateway.core.catalogue import load_catalogues
from gateway.core.certs import load_pem_certificate, load_pem_private_key
from gateway.core.envelopes import read_error
from gateway.core.xmlparse import parse_xml
from gateway.keystore import (
    certificate_fingerprint,
    issue_national_certificate,
    load_node_keys,
    revoke,
)
from gateway.node import NodeParts, build_node
from gateway.testbed import setup_nodes
from gateway.transport.api import ListenerGuard
from gateway.transport.client import HTTPSClient, PeerUnreachable
from gateway.transport.health import PUBLIC_ROUTES
from gateway.transport.tls import authority_of_certificate, peer_of_certificate
from tests.service.bed import raw_client

AUTHORITIES = {"NO": ["NO-HELSEDIR", "NO-UDIR"], "PT": ["PT-OMD"], "EE": ["EE-TA"]}
METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD")
#: Codes a guard answers with.
REFUSAL_CODES = {"CLIENT_CERTIFICATE_UNKNOWN", "PEER_UNKNOWN", "UNAUTHORIZED"}


@dataclass
class Credential:
    key: Any
    certificate: Any


@dataclass
class Bed:
    parts: NodeParts
    node_dir: Path
    api: dict[str, Credential]
    peer: dict[str, Credential]


def _credential(key_path: Path, cert_path: Path) -> Credential:
    return Credential(
        load_pem_private_key(key_path.read_bytes()),
        load_pem_certificate(cert_path.read_bytes()),
    )


@contextlib.asynccontextmanager
async def node_under_test(tmp_path: Path) -> AsyncIterator[Bed]:
    setups = setup_nodes(tmp_path, AUTHORITIES)
    no = setups["NO"]
    keys = {c: load_node_keys(s.node_dir) for c, s in setups.items()}
    now = datetime.now(UTC)
    long_ago = now - timedelta(days=30)

    # National API credentials.
    helsedir = no.authorities["NO-HELSEDIR"]
    udir = no.authorities["NO-UDIR"]
    revoke(no.node_dir, "NO-UDIR")
    expired = issue_national_certificate(
        no.node_dir, "NO-HELSEDIR", tmp_path / "expired", now=long_ago, days=1
    )
    stranger = pki.issue_national_system(pki.make_ca("NO", now=now), "NO-HELSEDIR", now=now)
    api = {
        "right": _credential(helsedir.key_path, helsedir.certificate_path),
        "unknown CA": Credential(stranger.key, stranger.certificate),
        "revoked": _credential(udir.key_path, udir.certificate_path),
        "expired": _credential(expired.key_path, expired.certificate_path),
        "wrong kind": Credential(keys["NO"].tls.key, keys["NO"].tls.certificate),
    }

    # Peer API credentials.
    revoke(no.node_dir, certificate_fingerprint(keys["EE"].tls.certificate))
    pt_expired = pki.issue_node_tls(keys["PT"].ca.issued, "PT", now=long_ago, days=1)
    stranger_tls = pki.issue_node_tls(pki.make_ca("PT", now=now), "PT", now=now)
    omd = setups["PT"].authorities["PT-OMD"]
    peer = {
        "right": Credential(keys["PT"].tls.key, keys["PT"].tls.certificate),
        "unknown CA": Credential(stranger_tls.key, stranger_tls.certificate),
        "revoked": Credential(keys["EE"].tls.key, keys["EE"].tls.certificate),
        "expired": Credential(pt_expired.key, pt_expired.certificate),
        "wrong kind": _credential(omd.key_path, omd.certificate_path),
    }

    service, parts = build_node(no.node_dir, reactor, catalogues=load_catalogues())
    service.startService()
    try:
        yield Bed(parts, no.node_dir, api, peer)
    finally:
        await service.stopService()


def routes(resource: Resource, prefix: str = "") -> Iterator[str]:
    """Every path of a resource tree: inner nodes and leaves (a leaf also gets a sub-path)."""
    if isinstance(resource, ListenerGuard):
        resource = resource.inner
    yield prefix or "/"
    if resource.isLeaf:
        yield f"{prefix}/IMI-NO-2026-000001"  # leaves read their own sub-path (tracking)
        return
    for name, child in sorted(resource.children.items()):
        yield from routes(child, f"{prefix}/{name.decode()}")
    yield f"{prefix}/no-such-route"


async def call(client: HTTPSClient, method: str, url: str) -> tuple[int, str | None] | None:
    """(status, error code) of one request, or None when the TLS handshake is refused."""
    try:
        answer = await client.request(method, url, body=b"<x/>" if method != "GET" else None)
    except PeerUnreachable:
        return None
    code = None
    if answer.body:
        with contextlib.suppress(Exception):
            code = read_error(parse_xml(answer.body)).code
    return answer.status, code


async def check_listener(
    bed: Bed, name: str, guard: Resource, port: int, credentials: dict[str, Credential]
) -> set[str]:
    assert isinstance(guard, ListenerGuard), f"the {name} listener's root is not its guard"
    keys = load_node_keys(bed.node_dir)
    clients = {
        label: raw_client(c.key, c.certificate, port, keys.ca.certificate, keys.tls.certificate)
        for label, c in credentials.items()
    }
    paths = set(routes(guard))
    try:
        for path in sorted(paths):
            for method in METHODS:
                url = f"https://127.0.0.1:{port}{path}"
                for label, client in clients.items():
                    result = await call(client, method, url)
                    where = f"{name} {method} {path} with the {label} certificate"
                    if label == "right":
                        assert result is not None, f"{where}: handshake refused"
                        if path.startswith("/api/v1/coordination/") and result[0] == 403:
                            # past the guard: a national system is no coordinator (domain refusal)
                            assert result[1] in (
                                "COORDINATOR_UNKNOWN",
                                None if method == "HEAD" else "",
                            ), f"{where}: {result}"
                            continue
                        assert result[0] not in (401, 403), f"{where}: refused {result}"
                        if result[0] >= 400 and method != "HEAD":  # never an HTML error page
                            assert result[1] is not None, f"{where}: no Error document {result}"
                        continue
                    if result is None:
                        continue  # refused at the TLS handshake
                    status, code = result
                    assert status == 401, f"{where}: answered {result}"
                    if method != "HEAD":
                        assert code in REFUSAL_CODES, f"{where}: answered {result}"
    finally:
        for client in clients.values():
            await client.close()
    return paths


@pytest_twisted.ensureDeferred
async def test_every_route_of_every_listener_refuses_unknown_revoked_expired_and_wrong_kind_certificates(
    tmp_path,
) -> None:
    async with node_under_test(tmp_path) as bed:
        parts = bed.parts
        api_paths = await check_listener(
            bed, "national-system API", parts.api.site.resource, parts.api.port, bed.api
        )
        peer_paths = await check_listener(
            bed, "peer API", parts.peer.site.resource, parts.peer.port, bed.peer
        )
        # The walk found the real routes (the test cannot pass on an empty tree).
        assert {
            "/api/v1/documents",
            "/api/v1/deliveries",
            "/api/v1/exchanges",
            "/api/v1/authorities",
        } <= api_paths
        assert {
            "/peer/v1/envelopes",
            "/peer/v1/exchanges",
            "/peer/v1/directory",
            "/peer/v1/audit/checkpoints",
        } <= peer_paths

        # Health: plain HTTP, exactly the public allow-list.
        health = parts.health.site.resource
        public = {f"/{name.decode()}" for name in health.routes}  # type: ignore[attr-defined]
        assert public <= {"/" + route.strip("/").split("/")[0] for route in PUBLIC_ROUTES}
        assert public == {"/health", "/ready", "/metrics"}  # no eTranslation configured here
        base = f"http://127.0.0.1:{parts.health.port}"
        for path in ("/health", "/ready", "/metrics"):
            answer = await treq.get(base + path)
            assert answer.code == 200
            await answer.content()
        for path in ("/", "/api/v1/authorities", "/peer/v1/directory", "/translation", "/x"):
            for method in ("GET", "POST"):
                answer = await treq.request(method, base + path)
                assert answer.code == 404, (method, path)
                await answer.content()


def test_the_guard_refuses_a_certificate_outside_its_validity_even_if_tls_let_it_through() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    ca = pki.make_ca("NO", now=now)
    national = pki.issue_national_system(ca, "NO-HELSEDIR", now=now, days=10)
    registered = {"NO-HELSEDIR": (national.certificate,)}
    assert authority_of_certificate(national.certificate, registered, frozenset(), now) == (
        "NO-HELSEDIR"
    )
    for moment in (now - timedelta(days=1), now + timedelta(days=11)):
        with pytest.raises(Exception, match="validity") as refused:
            authority_of_certificate(national.certificate, registered, frozenset(), moment)
        assert refused.value.code == "CLIENT_CERTIFICATE_UNKNOWN"  # type: ignore[attr-defined]

    tls = pki.issue_node_tls(ca, "NO", now=now, days=10)
    pinned = {"NO": tls.certificate}
    assert peer_of_certificate(tls.certificate, pinned, frozenset(), now) == "NO"
    with pytest.raises(Exception, match="validity") as refused:
        peer_of_certificate(tls.certificate, pinned, frozenset(), now + timedelta(days=11))
    assert refused.value.code == "PEER_UNKNOWN"  # type: ignore[attr-defined]
    revoked = frozenset({certificate_fingerprint(tls.certificate)})
    with pytest.raises(Exception) as refused:
        peer_of_certificate(tls.certificate, pinned, revoked, now)
    assert refused.value.code == "PEER_UNKNOWN"  # type: ignore[attr-defined]
