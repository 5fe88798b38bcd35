"""Adapter for the European Commission's eTranslation service (asynchronous, callbacks).

How eTranslation works (its "REST web service" for text snippets):

1. The client POSTs JSON to the translate endpoint (for example
   ``https://webgate.ec.europa.eu/etranslation/si/translate``), authenticated
   with HTTP Digest::

       {"priority": 0, "externalReference": "...",
        "callerInformation": {"application": "...", "username": "..."},
        "sourceLanguage": "DE", "targetLanguages": ["NB"], "domain": "GEN",
        "textToTranslate": "...",
        "requesterCallback": "https://node/.../translated",
        "errorCallback": "https://node/.../error"}

2. The synchronous answer is a number: the request id (positive) or an
   error code (negative).
3. Later eTranslation POSTs (form-encoded) to ``requesterCallback`` the
   fields ``request-id``, ``target-language``, ``translated-text`` and
   ``external-reference``; or to ``errorCallback`` the fields
   ``request-id``, ``target-languages``, ``error-code`` (some deployments
   send ``error_code``), ``error-message`` and ``external-reference``.

eTranslation cannot present a client certificate, so the callback is
authenticated by an unguessable per-request token (256 bits from
``secrets``) in the callback URL: ``{callback_base_url}/{ref}/{token}/{kind}``.
The token is compared in constant time, is valid for one request only and is
forgotten when the request completes, fails or times out. Unknown or
finished references and wrong tokens are answered 404 and ignored.

:class:`ETranslationCallbackResource` is the ``twisted.web`` resource the node
mounts at the path of ``callback_base_url`` on its API listener.
"""

from __future__ import annotations

import hmac
import json
import secrets
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IAgent, IResponse
from twisted.web.resource import Resource
from twisted.web.server import Request
from zope.interface import implementer

from ._http import ManagedHTTPClient, as_unavailable, read_body, request_target, send
from .base import (
    ITranslator,
    Translation,
    TranslationTimeout,
    TranslationUnavailable,
    UnknownLanguage,
    check_language,
    text_sha256,
)
from .digest import DigestChallengeError, DigestSession

ENGINE = "etranslation"
#: eTranslation's documented limit for ``textToTranslate`` snippets.
MAX_SNIPPET_CHARS = 5000

log = Logger(namespace="gateway.adapters.translation.etranslation")


class ETranslationRefused(TranslationUnavailable):
    """eTranslation refused the translation request (negative answer or error callback)."""

    code = "TRANSLATION_REFUSED"


@dataclass(eq=False)
class _Pending:
    ref: str
    token: str
    source: str
    target: str
    engine_target: str
    original_sha256: str
    deferred: Deferred[Translation | None] | None = None
    timer: IDelayedCall | None = None
    submission: Deferred[Any] | None = None
    request_id: int | None = None


@implementer(ITranslator)
class ETranslationTranslator:
    """Submits texts to eTranslation and waits for its callback.

    ``callback_base_url`` is the public URL at which the node serves
    :attr:`callback_resource`; ``timeout`` bounds submission plus waiting for
    the callback (measured on ``clock``).
    """

    engine = ENGINE

    def __init__(
        self,
        http: IAgent | ManagedHTTPClient,
        url: str,
        *,
        application: str,
        username: str,
        password: str,
        callback_base_url: str,
        clock: IReactorTime,
        timeout: float = 300.0,
        auth_username: str | None = None,
        domain: str = "GEN",
        max_text_chars: int = MAX_SNIPPET_CHARS,
        max_response_bytes: int = 65_536,
        max_callback_bytes: int = 1_048_576,
        language_codes: Mapping[str, str] | None = None,
        languages: Collection[str] | None = None,
    ) -> None:
        self._managed = (
            http if isinstance(http, ManagedHTTPClient) else ManagedHTTPClient(http, None)
        )
        self._url = url
        self._application = application
        self._username = username
        self._digest = DigestSession(auth_username or application, password)
        self._callback_base = callback_base_url.rstrip("/")
        self._clock = clock
        self._timeout = timeout
        self._domain = domain
        self._max_text_chars = max_text_chars
        self._max_response_bytes = max_response_bytes
        self.max_callback_bytes = max_callback_bytes
        self._codes = dict(language_codes or {})
        self._languages = frozenset(languages) if languages is not None else None
        self._pending: dict[str, _Pending] = {}
        self.callback_resource = ETranslationCallbackResource(self)

    # --- ITranslator -----------------------------------------------------------

    def translate(self, text: str, source: str, target: str) -> Deferred[Translation | None]:
        try:
            check_language(source)
            check_language(target)
        except UnknownLanguage as exc:
            return fail(exc)
        if source == target or not text.strip():
            return succeed(None)
        if self._languages is not None and not {source, target} <= self._languages:
            return succeed(None)  # pair not offered: the text is not sent anywhere
        if len(text) > self._max_text_chars:
            return fail(
                TranslationUnavailable(
                    f"the text has {len(text)} characters; eTranslation snippets are "
                    f"limited to {self._max_text_chars}"
                )
            )
        pending = _Pending(
            ref=uuid.uuid4().hex,
            token=secrets.token_urlsafe(32),
            source=source,
            target=target,
            engine_target=self._code(target),
            original_sha256=text_sha256(text),
        )
        pending.deferred = Deferred(lambda _d: self._finish(pending, None, cancelled=True))
        self._pending[pending.ref] = pending
        pending.timer = self._clock.callLater(self._timeout, self._expire, pending)
        pending.submission = self._submit(text, pending)
        pending.submission.addCallbacks(
            lambda request_id: self._submitted(pending, request_id),
            lambda failure: self._finish(pending, failure),
        )
        return pending.deferred

    def close(self) -> Deferred[None]:
        for pending in list(self._pending.values()):
            self._finish(pending, Failure(TranslationUnavailable("the node is shutting down")))
        return self._managed.close()

    @property
    def pending_count(self) -> int:
        """Requests submitted and not yet answered (for metrics)."""
        return len(self._pending)

    # --- submission --------------------------------------------------------------

    def _code(self, language: str) -> str:
        return self._codes.get(language, language.upper())

    def _callback_url(self, pending: _Pending, kind: str) -> str:
        return f"{self._callback_base}/{pending.ref}/{pending.token}/{kind}"

    def _submit(self, text: str, pending: _Pending) -> Deferred[int]:
        payload = {
            "priority": 0,
            "externalReference": pending.ref,
            "callerInformation": {"application": self._application, "username": self._username},
            "sourceLanguage": self._code(pending.source),
            "targetLanguages": [pending.engine_target],
            "domain": self._domain,
            "textToTranslate": text,
            "requesterCallback": self._callback_url(pending, "translated"),
            "errorCallback": self._callback_url(pending, "error"),
        }
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        target = request_target(self._url)
        headers = {b"Content-Type": b"application/json", b"Accept": b"text/plain, application/json"}

        def post() -> Deferred[IResponse]:
            h = dict(headers)
            authorization = self._digest.authorization("POST", target)
            if authorization is not None:
                h[b"Authorization"] = authorization.encode("utf-8")
            return send(self._managed.agent, "POST", self._url, body=body, headers=h)

        def first(response: IResponse) -> Deferred[int]:
            if response.code != 401:
                return self._read_request_id(response)
            try:
                challenge = self._digest.challenged(
                    response.headers.getRawHeaders(b"www-authenticate", [])
                )
            except DigestChallengeError as exc:
                return self._discard(response).addCallback(
                    _raise, TranslationUnavailable(f"eTranslation authentication: {exc}")
                )
            if challenge is None:
                return self._discard(response).addCallback(
                    _raise,
                    TranslationUnavailable(
                        "eTranslation asked for an authentication other than Digest"
                    ),
                )
            return self._discard(response).addCallback(lambda _: post()).addCallback(second)

        def second(response: IResponse) -> Deferred[int]:
            if response.code == 401:
                self._digest.forget()
                return self._discard(response).addCallback(
                    _raise,
                    TranslationUnavailable("eTranslation refused the credentials (HTTP 401)"),
                )
            return self._read_request_id(response)

        d = post().addCallback(first)
        d.addErrback(as_unavailable, "eTranslation")
        return d

    def _discard(self, response: IResponse) -> Deferred[bytes]:
        return read_body(response, self._max_response_bytes)

    def _read_request_id(self, response: IResponse) -> Deferred[int]:
        def parse(body: bytes) -> int:
            if not 200 <= response.code < 300:
                raise TranslationUnavailable(f"eTranslation answered HTTP {response.code}")
            raw = body.decode("utf-8", "replace").strip().strip('"').strip()
            try:
                number = int(raw)
            except ValueError:
                raise TranslationUnavailable(
                    "eTranslation answered something other than a request id"
                ) from None
            if number < 0:
                raise ETranslationRefused(
                    f"eTranslation refused the request with error code {number}"
                )
            if number == 0:
                raise TranslationUnavailable("eTranslation answered request id 0")
            return number

        return read_body(response, self._max_response_bytes).addCallback(parse)

    def _submitted(self, pending: _Pending, request_id: int) -> None:
        pending.submission = None
        if pending.deferred is not None:
            pending.request_id = request_id

    def _expire(self, pending: _Pending) -> None:
        pending.timer = None
        self._finish(
            pending,
            Failure(
                TranslationTimeout(f"eTranslation did not call back within {self._timeout:g} s")
            ),
        )

    def _finish(
        self, pending: _Pending, result: Translation | Failure | None, *, cancelled: bool = False
    ) -> None:
        """Complete ``pending`` once: forget it, stop its timer and submission, fire it."""
        if self._pending.get(pending.ref) is not pending:
            return
        del self._pending[pending.ref]
        deferred, pending.deferred = pending.deferred, None
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        pending.timer = None
        submission, pending.submission = pending.submission, None
        if (
            submission is not None
            and not submission.called
            and (cancelled or isinstance(result, Failure))
        ):
            # Stop a submission still in flight when giving up (timeout, cancel, close);
            # after a callback it is left to finish and its answer is ignored.
            submission.cancel()
        if deferred is None or cancelled:
            return  # Deferred.cancel fails the Deferred with CancelledError itself
        if isinstance(result, Failure) and result.check(CancelledError):
            result = Failure(TranslationUnavailable("the eTranslation request was cancelled"))
        if isinstance(result, Failure):
            deferred.errback(result)
        else:
            deferred.callback(result)

    # --- callbacks -------------------------------------------------------------------

    def _lookup(self, ref: str, token: str) -> _Pending | None:
        pending = self._pending.get(ref)
        if pending is None:
            return None
        if not hmac.compare_digest(pending.token.encode("ascii"), token.encode("utf-8", "replace")):
            return None
        return pending

    def _callback(self, pending: _Pending, kind: str, fields: Mapping[str, str]) -> int:
        """Apply one authenticated callback; return the HTTP status to answer."""
        reference = fields.get("external-reference")
        if reference is not None and reference != pending.ref:
            return 400
        request_id = fields.get("request-id")
        if request_id is not None and pending.request_id is not None:
            if request_id.strip() != str(pending.request_id):
                return 400
        if kind == "error":
            code = fields.get("error-code") or fields.get("error_code") or "?"
            message = "".join(
                c if c.isprintable() else " " for c in fields.get("error-message", "")
            )
            detail = f": {message[:160]}" if message else ""
            self._finish(
                pending,
                Failure(ETranslationRefused(f"eTranslation reported error {code[:16]}{detail}")),
            )
            return 200
        language = fields.get("target-language")
        if language is not None and language.strip().upper() != pending.engine_target.upper():
            return 400
        translated = fields.get("translated-text")
        if translated is None:
            return 400
        if not translated.strip():
            self._finish(pending, None)
            return 200
        self._finish(
            pending,
            Translation(
                source_lang=pending.source,
                target_lang=pending.target,
                engine=self.engine,
                text=translated,
                original_sha256=pending.original_sha256,
            ),
        )
        return 200


def _raise(_: object, error: Exception) -> Any:
    raise error


class ETranslationCallbackResource(Resource):
    """Receives eTranslation's callbacks: ``POST {base}/{ref}/{token}/translated|error``.

    Mount it at the path of ``callback_base_url``. It answers 200 to an
    accepted callback, 404 to an unknown reference or a wrong token (and
    ignores it), 400 to a callback that does not match its request, 413 to an
    oversized body and 405 to methods other than POST.
    """

    isLeaf = True

    def __init__(self, translator: ETranslationTranslator) -> None:
        super().__init__()
        self._translator = translator

    def render(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        if request.method != b"POST":
            request.setResponseCode(405)
            request.setHeader(b"Allow", b"POST")
            return b"method not allowed\n"
        return self.render_POST(request)

    def render_POST(self, request: Request) -> bytes:
        path = request.postpath or []
        if len(path) != 3 or path[2] not in (b"translated", b"error"):
            request.setResponseCode(404)
            return b"not found\n"
        try:
            ref, token, kind = (p.decode("ascii") for p in path)
        except UnicodeDecodeError:
            request.setResponseCode(404)
            return b"not found\n"
        pending = self._translator._lookup(ref, token)
        if pending is None:
            log.info("eTranslation callback for an unknown or finished request ignored")
            request.setResponseCode(404)
            return b"not found\n"
        content = request.content
        if content is not None:
            content.seek(0, 2)
            size = content.tell()
            content.seek(0)
            if size > self._translator.max_callback_bytes:
                request.setResponseCode(413)
                return b"too large\n"
        fields = _fields(request)
        if fields is None:
            request.setResponseCode(400)
            return b"bad request\n"
        status = self._translator._callback(pending, kind, fields)
        if status != 200:
            log.warn(
                "eTranslation {kind} callback does not match its request (HTTP {status})",
                kind=kind,
                status=status,
            )
        request.setResponseCode(status)
        return b"ok\n" if status == 200 else b"bad request\n"


def _fields(request: Request) -> dict[str, str] | None:
    """The callback's fields (form body or query), decoded as UTF-8; None if undecodable."""
    fields: dict[str, str] = {}
    try:
        for name, values in (request.args or {}).items():
            if values:
                fields[name.decode("ascii")] = values[0].decode("utf-8")
        if "translated-text" not in fields and request.content is not None:
            # Some deployments deliver the translation as a plain-text body
            # with the other fields in the query string.
            content_type = (request.getHeader(b"content-type") or b"").lower()
            if not content_type or content_type.startswith(b"text/plain"):
                body = request.content.read()
                if body:
                    fields["translated-text"] = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return fields
