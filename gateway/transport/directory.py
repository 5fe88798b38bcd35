"""HTTP resources of the authority directory (twisted.web).

* :class:`DirectoryResource` -- ``GET /peer/v1/directory?since=N`` on the
  peer listener: this node's directory, signed by the node (the signer is
  injected), as an incremental update for a peer holding version N or in
  full (no ``since``, or N too old or unknown). ``304 Not Modified`` with no
  body when the peer is up to date. The ``X-Directory-Version`` header names
  the current version.
* :class:`AuthoritySearchResource` -- ``GET /api/v1/authorities?q=...
  &country=&area=&region=&lang=&limit=`` on the national systems' API: the
  multilingual search over this node's and the cached peer directories.
  XML (``AuthoritySearchResult`` in namespace ``urn:imi-gateway:search:1``,
  see docs/directory.md) by default; JSON when the ``Accept`` header prefers
  ``application/json``.

Neither renders on the reactor thread: reading the directory files,
searching, signing and serialising run through the injected ``run`` (the
node's thread pool), one request at a time per resource (the search index
and the publisher are used from one thread at a time); the reactor only
writes the answer. Without ``run`` (tests) the work runs inline.

Both are leaves; the composition root mounts them under the listeners'
guards (``gateway.transport.api.ListenerGuard``), which authenticate the
caller before either is reached: a peer node's pinned TLS certificate for
the directory, a registered national-system certificate for the search.
Errors are answered with
their stable code (an ``Error`` document, or ``{"error": {...}}`` in JSON)
and never echo request content. Nothing here logs query strings (they may
hold names) or document bodies.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET

from gateway.core.clock import Clock
from gateway.core.directory.document import write_entry_parts
from gateway.core.docxml import XML_LANG
from gateway.core.errors import GatewayError, InvalidInput
from gateway.core.search import SearchQuery, SearchQueryInvalid, SearchResult
from gateway.core.search.jsonform import search_result_json
from gateway.service.directory_publish import DirectoryPublisher
from gateway.service.directory_search import LiveSearch
from gateway.storage.directory_files import DirectoryStore
from gateway.transport.http import XML_CONTENT_TYPE, TypedResource, WebRequest, write_error

__all__ = [
    "SEARCH_NS",
    "AuthoritySearchResource",
    "DirectoryQueryInvalid",
    "DirectoryResource",
    "search_result_xml",
]

log = Logger()

#: Namespace of the search API's XML answer.
SEARCH_NS = "urn:imi-gateway:search:1"
JSON_CONTENT_TYPE = b"application/json; charset=utf-8"
_MAX_VERSION = 2**63 - 1
_DIGITS = re.compile(rb"\A[0-9]{1,19}\Z")


class DirectoryQueryInvalid(InvalidInput):
    """The directory request's since parameter is not a version number."""

    code = "DIRECTORY_QUERY_INVALID"


#: ``run(func, *args) -> Deferred``: blocking work off the reactor thread.
RunInThread = Callable[..., "Deferred[Any]"]


@dataclass
class _Answer:
    """An answer computed off the reactor thread, written on it."""

    body: bytes
    status: int = 200
    headers: dict[bytes, bytes] = field(default_factory=dict)


class _OffReactor:
    """Runs a resource's work through ``run``, one call at a time, and writes the answer."""

    def __init__(self, run: RunInThread | None) -> None:
        self._run: RunInThread = run or maybeDeferred
        self._lock = threading.Lock()

    def _locked(self, work: Callable[[], _Answer]) -> _Answer:
        with self._lock:
            return work()

    def render(
        self,
        request: WebRequest,
        work: Callable[[], _Answer],
        refused: Callable[[GatewayError], bytes],
    ) -> int:
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def write(answer: _Answer) -> None:
            if gone:
                return
            request.setResponseCode(answer.status)
            for name, value in answer.headers.items():
                request.setHeader(name, value)
            if answer.body:
                request.write(answer.body)
            request.finish()

        def failed(failure: Failure) -> None:
            if gone:
                return
            if isinstance(failure.value, GatewayError):
                body = refused(failure.value)
            else:
                log.failure("Directory request failed", failure)
                body = write_error(request, GatewayError("the request could not be answered"))
            request.write(body)
            request.finish()

        self._run(self._locked, work).addCallbacks(write, failed)
        return NOT_DONE_YET


def _arg(request: WebRequest, name: bytes) -> bytes | None:
    values = (request.args or {}).get(name)
    if not values:
        return None
    return values[-1]


class DirectoryResource(TypedResource):
    """``GET /peer/v1/directory?since=N``: the node-signed directory for a peer.

    ``sign(root) -> bytes`` signs with the node's signing key; ``clock``
    gives the publication time; ``run`` runs the work off the reactor.
    """

    isLeaf = True

    def __init__(
        self,
        store: DirectoryStore,
        sign: Callable[[etree._Element], bytes],
        *,
        clock: Clock,
        refresh_interval: float = 60.0,
        run: RunInThread | None = None,
    ) -> None:
        super().__init__()
        self._publisher = DirectoryPublisher(
            store, sign, now=clock.now, refresh_interval=refresh_interval
        )
        self._off = _OffReactor(run)

    def render_GET(self, request: WebRequest) -> bytes | int:
        request.setHeader(b"Cache-Control", b"no-store")

        def refused(exc: GatewayError) -> bytes:
            log.warn("Directory request refused: {code}", code=exc.code)
            return write_error(request, exc)

        try:
            raw = _arg(request, b"since")
            since: int | None = None
            if raw is not None:
                if not _DIGITS.match(raw) or int(raw) > _MAX_VERSION:
                    raise DirectoryQueryInvalid("since must be a directory version number")
                since = int(raw)
        except GatewayError as exc:
            return refused(exc)

        def work() -> _Answer:
            data = self._publisher.document(since)
            headers = {b"X-Directory-Version": str(self._publisher.current().version).encode()}
            if data is None:
                return _Answer(b"", 304, headers)
            return _Answer(data, 200, headers | {b"Content-Type": XML_CONTENT_TYPE})

        return self._off.render(request, work, refused)


# --- search ---------------------------------------------------------------------------


def _prefers_json(accept: bytes | None) -> bool:
    """Content negotiation between application/xml (default) and application/json."""
    if not accept:
        return False
    best_json = best_xml = -1.0
    for position, item in enumerate(accept.decode("latin-1").split(",")):
        media, *params = (part.strip().lower() for part in item.split(";"))
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        score = quality - position * 1e-6  # earlier wins a tie
        if media == "application/json":
            best_json = max(best_json, score)
        elif media in ("application/xml", "text/xml", "*/*", "application/*"):
            best_xml = max(best_xml, score)
    return best_json > 0 and best_json > best_xml


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{SEARCH_NS}}}{tag}")
    if text is not None:
        element.text = text
    for key, value in attrs.items():
        element.set(key, value)
    return element


def search_result_xml(result: SearchResult, labels: LiveSearch) -> bytes:
    """The XML answer of the search API (documented in docs/directory.md)."""
    query = result.query
    nsmap: Any = {None: SEARCH_NS}
    root = etree.Element(
        f"{{{SEARCH_NS}}}AuthoritySearchResult",
        nsmap=nsmap,
        total=str(result.total),
        returned=str(len(result.hits)),
    )
    attrs = {
        name: value
        for name, value in (
            ("q", query.text),
            ("country", query.country),
            ("area", query.area),
            ("region", query.region),
            ("lang", query.lang),
            ("limit", str(query.limit)),
        )
        if value
    }
    _sub(root, "Query", **attrs)
    for hit in result.hits:
        entry = hit.entry
        element = _sub(
            root, "Authority", id=entry.authority_id, country=hit.node_id, rank=str(hit.rank)
        )
        _sub(element, "DisplayName", hit.name).set(XML_LANG, hit.name_lang)
        write_entry_parts(element, entry, _sub, certificates=False)
        matched = _sub(element, "Matched", name="true" if hit.name_matched else "false")
        for code in hit.professions:
            _sub(matched, "Profession", labels.profession_label(code, query.lang), code=code)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


class AuthoritySearchResource(TypedResource):
    """``GET /api/v1/authorities``: the multilingual authority search for national systems."""

    isLeaf = True

    def __init__(self, search: LiveSearch, *, run: RunInThread | None = None) -> None:
        super().__init__()
        self._search = search
        self._off = _OffReactor(run)

    def render_GET(self, request: WebRequest) -> bytes | int:
        as_json = _prefers_json(request.getHeader(b"accept"))
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"Vary", b"Accept")

        def refused(exc: GatewayError) -> bytes:
            if as_json:
                request.setResponseCode(exc.http_status)
                request.setHeader(b"Content-Type", JSON_CONTENT_TYPE)
                body = {"error": {"code": exc.code, "message": str(exc)}}
                return json.dumps(body).encode("utf-8")
            return write_error(request, exc)

        try:
            query = self._query(request)
        except GatewayError as exc:
            return refused(exc)

        def work() -> _Answer:
            # The index follows the files (a stat each, a re-read of what changed).
            result = self._search.search(query)
            if as_json:
                document = search_result_json(result, self._search)
                body = json.dumps(document, ensure_ascii=False).encode("utf-8")
                return _Answer(body, headers={b"Content-Type": JSON_CONTENT_TYPE})
            body = search_result_xml(result, self._search)
            return _Answer(body, headers={b"Content-Type": XML_CONTENT_TYPE})

        return self._off.render(request, work, refused)

    @staticmethod
    def _query(request: WebRequest) -> SearchQuery:
        def text(name: bytes) -> str | None:
            raw = _arg(request, name)
            if raw is None:
                return None
            try:
                value = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise SearchQueryInvalid(f"parameter {name.decode()} is not UTF-8") from None
            return value.strip() or None

        limit_text = text(b"limit")
        limit = 20
        if limit_text is not None:
            if not limit_text.isdigit() or len(limit_text) > 4:
                raise SearchQueryInvalid("limit must be a whole number")
            limit = int(limit_text)
        country = text(b"country")
        region = text(b"region")
        area = text(b"area")
        return SearchQuery(
            text(b"q") or "",
            country=country.upper() if country else None,
            area=area.upper() if area else None,
            region=region.upper() if region else None,
            lang=text(b"lang"),
            limit=limit,
        )
