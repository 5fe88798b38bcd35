"""Local stand-ins for the translation engines, served by twisted.web on 127.0.0.1.

* :class:`FakeLibreTranslate` speaks LibreTranslate's ``/languages`` and
  ``/translate`` API and can answer, fail (HTTP 500/403), hang or flood.
* :class:`FakeETranslation` speaks eTranslation's asynchronous API behind
  real HTTP Digest authentication (Twisted's server-side implementation, an
  independent oracle for our client): it answers a request id, then POSTs the
  form-encoded callback to the URL the adapter gave it.
* :class:`Servers` starts sites on port 0 and stops them after the test.
"""

from __future__ import annotations

import json
from typing import Any

import treq
from treq.client import HTTPClient
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernameDigestHash
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.guard import DigestCredentialFactory, HTTPAuthSessionWrapper
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer

DEFAULT_LANGUAGES = [
    {"code": "de", "name": "German", "targets": ["en", "nb", "fr"]},
    {"code": "en", "name": "English", "targets": ["de", "nb", "fr"]},
    {"code": "fr", "name": "French", "targets": ["de", "en", "nb"]},
    {"code": "nb", "name": "Norwegian Bokmål", "targets": ["de", "en", "fr"]},
]


def fake_translation(text: str, target: str) -> str:
    return f"[{target}] {text[::-1]}"


class FakeLibreTranslate(Resource):
    """LibreTranslate's API; ``mode`` is ok | error500 | forbidden | hang | trickle | huge | notjson."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"
        self.languages: list[dict[str, Any]] = list(DEFAULT_LANGUAGES)
        self.translate_calls: list[dict[str, Any]] = []
        self.languages_calls = 0
        self.hung: list[Request] = []
        self.lost: list[Request] = []  # hung requests whose client closed the connection

    def render_GET(self, request: Request) -> bytes:
        if request.path != b"/languages":
            request.setResponseCode(404)
            return b'{"error": "Not found"}'
        self.languages_calls += 1
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(self.languages).encode()

    def render_POST(self, request: Request) -> bytes | int:
        if request.path != b"/translate":
            request.setResponseCode(404)
            return b'{"error": "Not found"}'
        body = json.loads(request.content.read())
        self.translate_calls.append(body)
        request.setHeader(b"Content-Type", b"application/json")
        if self.mode in ("hang", "trickle"):
            request.notifyFinish().addErrback(lambda _: self.lost.append(request))
        if self.mode == "hang":
            self.hung.append(request)
            return NOT_DONE_YET
        if self.mode == "trickle":  # headers and the start of the body, then nothing
            request.setHeader(b"Content-Length", b"1000")
            request.write(b'{"translatedText": "')
            self.hung.append(request)
            return NOT_DONE_YET
        if self.mode == "error500":
            request.setResponseCode(500)
            return b'{"error": "Cannot translate text: engine crashed"}'
        if self.mode == "forbidden":
            request.setResponseCode(403)
            return b'{"error": "Invalid API key"}'
        if self.mode == "huge":
            return b'{"translatedText": "' + b"x" * 200_000 + b'"}'
        if self.mode == "notjson":
            return b"<html>proxy error</html>"
        return json.dumps(
            {"translatedText": fake_translation(body["q"], body["target"])}, ensure_ascii=False
        ).encode()


@implementer(ICredentialsChecker)
class DigestChecker:
    """Checks Digest credentials with Twisted's own server-side computation."""

    credentialInterfaces = (IUsernameDigestHash,)

    def __init__(self, users: dict[bytes, bytes]) -> None:
        self.users = users
        self.accepted: list[bytes] = []
        self.refused = 0

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes]:
        password = self.users.get(credentials.username)
        if password is not None and credentials.checkPassword(password):
            self.accepted.append(credentials.username)
            return succeed(credentials.username)
        self.refused += 1
        return fail(UnauthorizedLogin())


@implementer(IRealm)
class _Realm:
    def __init__(self, resource: Resource) -> None:
        self.resource = resource

    def requestAvatar(self, avatar_id: Any, mind: Any, *interfaces: Any) -> Any:
        assert IResource in interfaces
        return IResource, self.resource, lambda: None


class FakeETranslation(Resource):
    """eTranslation's translate endpoint.

    ``mode``: translate (answer an id, then call requesterCallback) | error
    (answer an id, then call errorCallback) | refuse (answer -20001) |
    silent (answer an id, never call back).
    """

    isLeaf = True

    def __init__(self, client: HTTPClient) -> None:
        super().__init__()
        self.mode = "translate"
        self.client = client
        self.submissions: list[dict[str, Any]] = []
        self.callback_calls: list[Deferred[int]] = []
        self.next_id = 4711

    def render_POST(self, request: Request) -> bytes:
        doc = json.loads(request.content.read())
        self.submissions.append(doc)
        if self.mode == "refuse":
            return b"-20001"
        request_id = self.next_id
        self.next_id += 1
        if self.mode in ("translate", "error"):
            finished = request.notifyFinish()
            finished.addCallback(lambda _: self.call_back(doc, request_id))
            finished.addErrback(lambda _: None)  # the client went away: no callback
        request.setHeader(b"Content-Type", b"text/plain")
        return str(request_id).encode()

    def call_back(self, doc: dict[str, Any], request_id: int) -> None:
        target = doc["targetLanguages"][0]
        if self.mode == "translate":
            url = doc["requesterCallback"]
            fields = {
                "request-id": str(request_id),
                "target-language": target,
                "translated-text": fake_translation(doc["textToTranslate"], target.lower()),
                "external-reference": doc["externalReference"],
            }
        else:
            url = doc["errorCallback"]
            fields = {
                "request-id": str(request_id),
                "target-languages": target,
                "error-code": "-20028",
                "error-message": "Language pair not supported",
                "external-reference": doc["externalReference"],
            }
        self.callback_calls.append(post_form(self.client, url, fields))


def post_form(client: HTTPClient, url: str, fields: dict[str, str]) -> Deferred[int]:
    """POST ``fields`` form-encoded to ``url``; fires with the status code after reading the body."""

    def read(response: Any) -> Deferred[int]:
        return treq.content(response).addCallback(lambda _: response.code)

    return client.post(url, data=fields).addCallback(read)


def digest_protected(
    resource: Resource, users: dict[bytes, bytes]
) -> tuple[Resource, DigestChecker]:
    checker = DigestChecker(users)
    portal = Portal(_Realm(resource), [checker])
    wrapper = HTTPAuthSessionWrapper(portal, [DigestCredentialFactory(b"md5", b"eTranslation")])
    return wrapper, checker


class Servers:
    """Local sites on 127.0.0.1 and an HTTP client, all stopped after the test."""

    def __init__(self) -> None:
        self._ports: list[Any] = []
        self._closers: list[Any] = []
        self._pool = HTTPConnectionPool(reactor, persistent=False)
        self.client = HTTPClient(Agent(reactor, pool=self._pool))

    def listen(self, resource: Resource) -> str:
        site = Site(resource)
        site.displayTracebacks = False
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self._ports.append(port)
        return f"http://127.0.0.1:{port.getHost().port}"

    def listen_tls(self, resource: Resource, context_factory: Any) -> str:
        port = reactor.listenSSL(0, Site(resource), context_factory, interface="127.0.0.1")
        self._ports.append(port)
        return f"https://127.0.0.1:{port.getHost().port}"

    def on_close(self, closer: Any) -> None:
        """Call ``closer()`` (returning a Deferred or None) at teardown."""
        self._closers.append(closer)

    async def close(self) -> None:
        for closer in self._closers:
            result = closer()
            if isinstance(result, Deferred):
                await result
        await gatherResults([Deferred.fromCoroutine(_stop(p)) for p in self._ports])
        await self._pool.closeCachedConnections()


async def _stop(port: Any) -> None:
    await port.stopListening()
