"""Adapter for a self-hosted LibreTranslate server (https://libretranslate.com).

API used (LibreTranslate 1.x):

* ``GET {url}/languages`` -> ``[{"code": "en", "name": "English",
  "targets": ["de", ...]}, ...]`` (older servers omit ``targets``: every
  language is then taken as a target of every other). Fetched once and kept
  for ``languages_ttl`` seconds, so an unsupported pair answers None
  *without sending the text anywhere*.
* ``POST {url}/translate`` with JSON ``{"q", "source", "target",
  "format": "text", "api_key"?}`` -> ``{"translatedText": "..."}``; errors
  are ``{"error": "..."}`` with a 4xx/5xx status (400 bad request, 403
  invalid API key, 429 rate limit, 500 engine error).

The text is never logged; error messages carry the HTTP status and the
server's (fixed, text-free) error string only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IAgent, IResponse
from zope.interface import implementer

from ._http import ManagedHTTPClient, as_unavailable, read_body, send, with_timeout
from .base import (
    ITranslator,
    Translation,
    TranslationUnavailable,
    UnknownLanguage,
    check_language,
    text_sha256,
)

ENGINE = "libretranslate"


def _server_message(body: bytes) -> str:
    """The ``error`` string of a LibreTranslate error answer, shortened and printable."""
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    message = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(message, str):
        return ""
    clean = "".join(ch if ch.isprintable() else " " for ch in message)
    return clean[:160]


@implementer(ITranslator)
class LibreTranslateTranslator:
    """Translates through one LibreTranslate server.

    ``language_codes`` maps IMI codes to the server's codes where they differ
    (for example ``{"nb": "nb"}`` is the default identity; a server that only
    knows ``no`` would need ``{"nb": "no"}``).
    """

    engine = ENGINE

    def __init__(
        self,
        http: IAgent | ManagedHTTPClient,
        url: str,
        *,
        clock: IReactorTime,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_text_chars: int = 10_000,
        max_response_bytes: int = 1_048_576,
        language_codes: Mapping[str, str] | None = None,
        languages_ttl: float = 3600.0,
    ) -> None:
        self._managed = (
            http if isinstance(http, ManagedHTTPClient) else ManagedHTTPClient(http, None)
        )
        self._url = url.rstrip("/")
        self._clock = clock
        self._api_key = api_key
        self._timeout = timeout
        self._max_text_chars = max_text_chars
        self._max_response_bytes = max_response_bytes
        self._codes = dict(language_codes or {})
        self._languages_ttl = languages_ttl
        self._pairs: frozenset[tuple[str, str]] | None = None
        self._pairs_expire = 0.0
        self._pairs_waiters: list[Deferred[frozenset[tuple[str, str]]]] | None = None

    # --- ITranslator -----------------------------------------------------------

    def translate(self, text: str, source: str, target: str) -> Deferred[Translation | None]:
        try:
            check_language(source)
            check_language(target)
        except UnknownLanguage as exc:
            return fail(exc)
        if source == target or not text.strip():
            return succeed(None)
        if len(text) > self._max_text_chars:
            return fail(
                TranslationUnavailable(
                    f"the text has {len(text)} characters; this engine is configured "
                    f"for at most {self._max_text_chars}"
                )
            )
        engine_source = self._codes.get(source, source)
        engine_target = self._codes.get(target, target)

        def chosen(pairs: frozenset[tuple[str, str]]) -> Deferred[Translation | None]:
            if (engine_source, engine_target) not in pairs:
                return succeed(None)
            return self._translate(text, source, target, engine_source, engine_target)

        return self.supported_pairs().addCallback(chosen)

    def close(self) -> Deferred[None]:
        return self._managed.close()

    # --- languages ---------------------------------------------------------------

    def supported_pairs(self) -> Deferred[frozenset[tuple[str, str]]]:
        """The (source, target) pairs of engine codes the server translates."""
        if self._pairs is not None and self._clock.seconds() < self._pairs_expire:
            return succeed(self._pairs)

        def cancel(waiter: Deferred[Any]) -> None:
            if self._pairs_waiters is not None and waiter in self._pairs_waiters:
                self._pairs_waiters.remove(waiter)

        waiter: Deferred[frozenset[tuple[str, str]]] = Deferred(cancel)
        if self._pairs_waiters is not None:
            self._pairs_waiters.append(waiter)
            return waiter
        self._pairs_waiters = [waiter]
        d = with_timeout(
            send(
                self._managed.agent,
                "GET",
                f"{self._url}/languages",
                headers={b"Accept": b"application/json"},
            ).addCallback(self._read_languages),
            self._timeout,
            self._clock,
            "LibreTranslate",
        )
        d.addErrback(as_unavailable, "LibreTranslate")
        d.addBoth(self._languages_done)
        return waiter

    def _read_languages(self, response: IResponse) -> Deferred[frozenset[tuple[str, str]]]:
        def parse(body: bytes) -> frozenset[tuple[str, str]]:
            if response.code != 200:
                raise TranslationUnavailable(
                    f"LibreTranslate answered HTTP {response.code} for /languages"
                )
            try:
                doc = json.loads(body)
            except ValueError:
                raise TranslationUnavailable("LibreTranslate /languages is not JSON") from None
            if not isinstance(doc, list):
                raise TranslationUnavailable("LibreTranslate /languages is not a list")
            codes = [
                e["code"] for e in doc if isinstance(e, dict) and isinstance(e.get("code"), str)
            ]
            pairs: set[tuple[str, str]] = set()
            for entry in doc:
                if not isinstance(entry, dict) or not isinstance(entry.get("code"), str):
                    continue
                targets = entry.get("targets")
                if not isinstance(targets, list):
                    targets = codes
                pairs.update(
                    (entry["code"], t) for t in targets if isinstance(t, str) and t != entry["code"]
                )
            return frozenset(pairs)

        return read_body(response, self._max_response_bytes).addCallback(parse)

    def _languages_done(self, result: frozenset[tuple[str, str]] | Failure) -> None:
        waiters, self._pairs_waiters = self._pairs_waiters or [], None
        if isinstance(result, Failure):
            for waiter in waiters:
                waiter.errback(result)
            return None
        self._pairs = result
        self._pairs_expire = self._clock.seconds() + self._languages_ttl
        for waiter in waiters:
            waiter.callback(result)
        return None

    # --- translate ---------------------------------------------------------------

    def _translate(
        self, text: str, source: str, target: str, engine_source: str, engine_target: str
    ) -> Deferred[Translation | None]:
        payload: dict[str, str] = {
            "q": text,
            "source": engine_source,
            "target": engine_target,
            "format": "text",
        }
        if self._api_key:
            payload["api_key"] = self._api_key
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        sent = send(
            self._managed.agent,
            "POST",
            f"{self._url}/translate",
            body=body,
            headers={b"Content-Type": b"application/json", b"Accept": b"application/json"},
        )

        def answered(response: IResponse) -> Deferred[Translation | None]:
            return read_body(response, self._max_response_bytes).addCallback(
                self._parse_translation, response.code, text, source, target
            )

        # The timeout covers the whole exchange, the answer's body included.
        d: Deferred[Translation | None] = with_timeout(
            sent.addCallback(answered), self._timeout, self._clock, "LibreTranslate"
        )
        d.addErrback(as_unavailable, "LibreTranslate")
        return d

    def _parse_translation(
        self, body: bytes, status: int, text: str, source: str, target: str
    ) -> Translation | None:
        if status != 200:
            message = _server_message(body)
            raise TranslationUnavailable(
                f"LibreTranslate answered HTTP {status}" + (f": {message}" if message else "")
            )
        try:
            doc = json.loads(body)
        except ValueError:
            raise TranslationUnavailable("LibreTranslate answered with invalid JSON") from None
        translated = doc.get("translatedText") if isinstance(doc, dict) else None
        if not isinstance(translated, str):
            raise TranslationUnavailable("LibreTranslate's answer has no translatedText string")
        if not translated.strip():
            return None
        return Translation(
            source_lang=source,
            target_lang=target,
            engine=self.engine,
            text=translated,
            original_sha256=text_sha256(text),
        )
