"""Directory synchronisation (service) and the directory/search HTTP resources (transport).

Two real node directories with real keys and signatures; the peer endpoint is
NO's real :class:`DirectoryResource`, reached by an in-memory ``fetch`` (the
HTTPS client is the lead's). The clock is a ``task.Clock`` set to a fixed
time; nothing sleeps.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from lxml import etree
from twisted.internet import task
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import globalLogPublisher
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from gateway.core.search import SearchQuery
from gateway.service.directory_search import LiveSearch
from gateway.service.directory_sync import DirectorySyncService, SyncOutcome
from gateway.service.runtime import ReactorClock
from gateway.storage.directory_files import DirectoryStore, authority_certificates
from gateway.transport.directory import (
    SEARCH_NS,
    AuthoritySearchResource,
    DirectoryResource,
)
from tests.test_directory_store import NOW, bind, entry, link, make_node, signer

INTERVAL = 300.0


def get(
    resource: Any, args: dict[bytes, list[bytes]] | None = None, accept: bytes | None = None
) -> tuple[DummyRequest, bytes]:
    request = DummyRequest([b""])
    request.method = b"GET"
    request.args = args or {}
    if accept is not None:
        request.requestHeaders.addRawHeader(b"accept", accept)
    body = resource.render(request)
    if body == NOT_DONE_YET:  # rendered off the reactor (here: inline): the answer was written
        assert request.finished
        body = b"".join(request.written)
    return request, body


def header(request: DummyRequest, name: bytes) -> bytes | None:
    values = request.responseHeaders.getRawHeaders(name)
    return values[0] if values else None


@pytest.fixture
def clock() -> task.Clock:
    clock = task.Clock()
    clock.advance(NOW.timestamp())
    return clock


@pytest.fixture
def nodes(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    no = make_node(tmp_path, "NO")
    pt = make_node(tmp_path, "PT")
    link(no, pt)
    bind(no, "NO-HELSEDIR")
    DirectoryStore(no).add(entry("NO-HELSEDIR", ("nn", "Helsedirektoratet")), now=NOW)
    return no, pt


@pytest.fixture
def endpoint(nodes: tuple[pathlib.Path, pathlib.Path], clock: task.Clock) -> DirectoryResource:
    no, _ = nodes
    return DirectoryResource(DirectoryStore(no), signer(no).sign, clock=ReactorClock(clock))


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


class Peer:
    """``fetch`` for the sync service: NO's resource over an in-memory 'network'."""

    def __init__(self, resource: DirectoryResource) -> None:
        self.resource = resource
        self.calls: list[tuple[str, int | None]] = []
        self.failures: list[Exception] = []
        self.rewrite: Any = None
        self.hold: Deferred[bytes | None] | None = None

    def fetch(self, peer_id: str, since: int | None) -> Deferred[bytes | None]:
        self.calls.append((peer_id, since))
        if self.hold is not None:
            return self.hold
        if self.failures:
            return fail(self.failures.pop(0))
        args = {} if since is None else {b"since": [str(since).encode()]}
        request, body = get(self.resource, args)
        if request.responseCode == 304:
            return succeed(None)
        assert request.responseCode in (None, 200), body
        if self.rewrite is not None:
            body = self.rewrite(body)
        return succeed(body)


def result_of(d: Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the Deferred did not fire"
    return results[0]


# --- the peer endpoint --------------------------------------------------------------------


def test_the_endpoint_serves_the_signed_directory_full_incremental_or_not_modified(
    nodes: tuple[pathlib.Path, pathlib.Path], endpoint: DirectoryResource
) -> None:
    no, _ = nodes
    request, body = get(endpoint)
    assert request.responseCode in (None, 200)
    assert header(request, b"content-type") == b"application/xml; charset=utf-8"
    assert header(request, b"x-directory-version") == b"1"
    assert b"<ds:Signature" in body and b"NO-HELSEDIR" in body
    request, body = get(endpoint, {b"since": [b"1"]})
    assert request.responseCode == 304 and body == b""
    bind(no, "NO-DSB")
    DirectoryStore(no).add(entry("NO-DSB", professions=("nurse",)), now=NOW)
    request, body = get(endpoint, {b"since": [b"1"]})
    assert header(request, b"x-directory-version") == b"2"
    assert b"<BaseVersion>1</BaseVersion>" in body and b"NO-DSB" in body
    assert b"NO-HELSEDIR" not in body


@pytest.mark.parametrize("since", [b"x", b"-1", b"1.5", b"99999999999999999999", b""])
def test_the_endpoint_refuses_a_malformed_since(endpoint: DirectoryResource, since: bytes) -> None:
    request, body = get(endpoint, {b"since": [since]})
    assert request.responseCode == 400
    assert b"<Code>DIRECTORY_QUERY_INVALID</Code>" in body


# --- the sync service ----------------------------------------------------------------------------


def service(pt: pathlib.Path, peer: Peer, clock: task.Clock, **kwargs: Any) -> DirectorySyncService:
    return DirectorySyncService(
        DirectoryStore(pt),
        ["NO"],
        peer.fetch,
        clock=ReactorClock(clock),
        interval=INTERVAL,
        **kwargs,
    )


def test_the_service_fetches_at_start_then_only_changes_and_propagates_removals(
    nodes: tuple[pathlib.Path, pathlib.Path],
    endpoint: DirectoryResource,
    clock: task.Clock,
    logged: list[dict[str, Any]],
) -> None:
    no, pt = nodes
    peer = Peer(endpoint)
    updates: list[Any] = []
    sync = service(pt, peer, clock, on_update=updates.append)
    sync.startService()
    try:
        assert peer.calls == [("NO", None)]
        assert set(authority_certificates(pt, "NO")) == {"NO-HELSEDIR"}

        clock.advance(INTERVAL)  # nothing changed: 304
        assert peer.calls[-1] == ("NO", 1)
        assert len(updates) == 1

        bind(no, "NO-DSB")
        bind(no, "NO-UDIR")
        sender = DirectoryStore(no)
        sender.add(entry("NO-DSB", professions=("nurse",)), now=NOW)
        sender.add(entry("NO-UDIR", professions=("secondary-school-teacher",)), now=NOW)
        clock.advance(INTERVAL)
        assert peer.calls[-1] == ("NO", 1)
        assert updates[-1].full is False and updates[-1].changed == ("NO-DSB", "NO-UDIR")

        sender.remove("NO-HELSEDIR", now=NOW)
        clock.advance(INTERVAL)
        assert peer.calls[-1] == ("NO", 3)
        assert updates[-1].removed == ("NO-HELSEDIR",)
        assert set(authority_certificates(pt, "NO")) == {"NO-DSB", "NO-UDIR"}
        assert LiveSearch(DirectoryStore(pt)).search(SearchQuery("sjukepleiar")).ids == ["NO-DSB"]
    finally:
        sync.stopService()
    clock.advance(INTERVAL * 3)
    assert len(peer.calls) == 4  # stopped: no more fetches
    text = json.dumps([str(e.get("log_format", "")) + repr(e) for e in logged])
    assert "Helsedirektoratet" not in text and "Postboks" not in text
    assert any("Applied the" in str(e.get("log_format")) for e in logged)


def test_the_cache_survives_a_restart_and_the_next_sync_is_incremental(
    nodes: tuple[pathlib.Path, pathlib.Path], endpoint: DirectoryResource, clock: task.Clock
) -> None:
    _, pt = nodes
    peer = Peer(endpoint)
    first = service(pt, peer, clock)
    first.startService()
    first.stopService()
    second = service(pt, peer, clock)  # a new process: a new store and service
    second.startService()
    second.stopService()
    assert peer.calls == [("NO", None), ("NO", 1)]


def test_failures_are_logged_and_retried_at_the_next_tick(
    nodes: tuple[pathlib.Path, pathlib.Path],
    endpoint: DirectoryResource,
    clock: task.Clock,
    logged: list[dict[str, Any]],
) -> None:
    _, pt = nodes
    peer = Peer(endpoint)
    peer.failures.append(ConnectionRefusedError("connection refused"))
    sync = service(pt, peer, clock)
    sync.startService()
    try:
        assert DirectoryStore(pt).cached("NO") is None
        assert any("failed" in str(e.get("log_format")) for e in logged)
        clock.advance(INTERVAL)
        assert DirectoryStore(pt).cached("NO") is not None
    finally:
        sync.stopService()


def test_a_tampered_document_is_refused_and_nothing_is_cached(
    nodes: tuple[pathlib.Path, pathlib.Path], endpoint: DirectoryResource, clock: task.Clock
) -> None:
    _, pt = nodes
    peer = Peer(endpoint)
    peer.rewrite = lambda body: body.replace(b"Postboks", b"Postb0ks")
    outcome: SyncOutcome = result_of(service(pt, peer, clock).sync_peer("NO"))
    assert outcome.status == "failed" and outcome.error_code == "SIGNATURE_DIGEST_MISMATCH"
    assert DirectoryStore(pt).cached("NO") is None


def test_an_update_for_another_base_makes_the_service_fetch_the_full_directory(
    nodes: tuple[pathlib.Path, pathlib.Path], endpoint: DirectoryResource, clock: task.Clock
) -> None:
    no, pt = nodes
    bind(no, "NO-DSB")
    bind(no, "NO-UDIR")
    sender = DirectoryStore(no)
    sender.add(entry("NO-DSB", professions=("nurse",)), now=NOW)  # version 2
    peer = Peer(endpoint)
    sync = service(pt, peer, clock)
    assert result_of(sync.sync_peer("NO")).update.version == 2
    sender.add(entry("NO-UDIR", professions=("secondary-school-teacher",)), now=NOW)  # 3
    # A stale intermediary answers with the update from version 1, not from 2.
    real_fetch = peer.fetch
    peer.fetch = lambda peer_id, since: real_fetch(peer_id, None if since is None else since - 1)  # type: ignore[method-assign]
    sync = service(pt, peer, clock)
    outcome = result_of(sync.sync_peer("NO"))
    assert outcome.status == "updated" and outcome.update.full
    assert peer.calls[-2:] == [("NO", 1), ("NO", None)]
    assert DirectoryStore(pt).cached("NO").version == 3  # type: ignore[union-attr]


def test_a_peer_still_syncing_is_skipped(
    nodes: tuple[pathlib.Path, pathlib.Path], endpoint: DirectoryResource, clock: task.Clock
) -> None:
    _, pt = nodes
    peer = Peer(endpoint)
    peer.hold = Deferred()
    sync = service(pt, peer, clock)
    sync.startService()
    try:
        clock.advance(INTERVAL)
        clock.advance(INTERVAL)
        assert len(peer.calls) == 1
        held, peer.hold = peer.hold, None
        held.callback(None)
        clock.advance(INTERVAL)
        assert len(peer.calls) == 2
    finally:
        sync.stopService()


def test_peers_are_read_at_each_tick(
    tmp_path: pathlib.Path, nodes: tuple[pathlib.Path, pathlib.Path], clock: task.Clock
) -> None:
    _, pt = nodes
    wanted: list[str] = []
    calls: list[str] = []

    def fetch(peer_id: str, since: int | None) -> Deferred[bytes | None]:
        calls.append(peer_id)
        return succeed(None)

    sync = DirectorySyncService(
        DirectoryStore(pt), lambda: wanted, fetch, clock=ReactorClock(clock), interval=INTERVAL
    )
    sync.startService()
    wanted.append("NO")
    clock.advance(INTERVAL)
    sync.stopService()
    assert calls == ["NO"]


# --- the search endpoint -----------------------------------------------------------------------------


@pytest.fixture
def search(
    nodes: tuple[pathlib.Path, pathlib.Path], endpoint: DirectoryResource, clock: task.Clock
) -> AuthoritySearchResource:
    _, pt = nodes
    result_of(service(pt, Peer(endpoint), clock).sync_peer("NO"))
    bind(pt, "PT-OMD")
    DirectoryStore(pt).add(
        entry(
            "PT-OMD", ("pt", "Ordem dos Médicos"), languages=("pt",), city="Lisboa", region="PT17"
        ),
        now=NOW + timedelta(seconds=1),
    )
    return AuthoritySearchResource(LiveSearch(DirectoryStore(pt)))


def test_search_answers_xml_by_default(search: AuthoritySearchResource) -> None:
    request, body = get(search, {b"q": ["médico".encode()], b"lang": [b"pt"]})
    assert header(request, b"content-type") == b"application/xml; charset=utf-8"
    root = etree.fromstring(body)
    assert root.tag == f"{{{SEARCH_NS}}}AuthoritySearchResult"
    assert root.get("total") == "2"
    ids = [a.get("id") for a in root.iter(f"{{{SEARCH_NS}}}Authority")]
    assert ids == ["PT-OMD", "NO-HELSEDIR"]  # the name matches first
    helsedir = root.findall(f"{{{SEARCH_NS}}}Authority")[1]
    matched = helsedir.find(f"{{{SEARCH_NS}}}Matched/{{{SEARCH_NS}}}Profession")
    assert matched is not None and matched.get("code") == "doctor" and matched.text == "médico"


def test_search_answers_json_when_asked_and_filters(search: AuthoritySearchResource) -> None:
    request, body = get(
        search,
        {b"q": [b"lege"], b"country": [b"no"], b"limit": [b"5"]},
        accept=b"text/html;q=0.9, application/json",
    )
    assert header(request, b"content-type") == b"application/json; charset=utf-8"
    document = json.loads(body)
    assert document["total"] == 1 and document["authorities"][0]["id"] == "NO-HELSEDIR"
    assert document["query"]["country"] == "NO"
    _, body = get(search, {b"region": [b"PT1"]}, accept=b"application/json")
    assert [a["id"] for a in json.loads(body)["authorities"]] == ["PT-OMD"]
    request, _ = get(search, {b"q": [b"lege"]}, accept=b"application/xml, application/json;q=0.5")
    assert header(request, b"content-type") == b"application/xml; charset=utf-8"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({}, "SEARCH_QUERY_INVALID"),
        ({b"q": [b"lege"], b"limit": [b"many"]}, "SEARCH_QUERY_INVALID"),
        ({b"q": [b"lege"], b"limit": [b"0"]}, "SEARCH_QUERY_INVALID"),
        ({b"q": [b"\xff\xfe"]}, "SEARCH_QUERY_INVALID"),
        ({b"q": [b"lege"], b"country": [b"XX"]}, "SEARCH_QUERY_INVALID"),
        ({b"q": [b"lege"], b"lang": [b"xx"]}, "CATALOGUE_LANGUAGE_UNKNOWN"),
    ],
)
def test_search_refuses_bad_queries_with_their_code(
    search: AuthoritySearchResource, args: dict[bytes, list[bytes]], code: str
) -> None:
    request, body = get(search, args)
    assert request.responseCode == 400
    assert f"<Code>{code}</Code>".encode() in body
    request, body = get(search, args, accept=b"application/json")
    assert request.responseCode == 400
    assert json.loads(body)["error"]["code"] == code
