"""Building the translation engine and service from the node configuration.

The node's TOML configuration has::

    [translation]
    engine = "none"            # or "libretranslate" or "etranslation"

    [translation.libretranslate]
    url = "https://mt.example.org"
    api_key_file = "/etc/imi-gateway/libretranslate.key"   # or api_key = "..."
    timeout_seconds = 30
    cache_entries = 10000      # service settings, allowed in any engine table
    max_concurrent = 4

    [translation.etranslation]
    url = "https://webgate.ec.europa.eu/etranslation/si/translate"
    application = "IMI-GW-NO"
    username = "imi-gateway"
    password_file = "/etc/imi-gateway/etranslation.password"  # or password = "..."
    callback_base_url = "https://gw.example.no/translation/etranslation"
    timeout_seconds = 300

``gateway.config`` checks ``engine`` and hands the selected engine's table
over unchecked; :func:`build_translator` / :func:`build_translation_service`
check it here. Every setting is documented in docs/translation.md. Unknown settings are
refused so that a typo does not silently fall back to a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IAgent

from gateway.core.errors import ConfigurationError
from gateway.core.ns import LANGUAGES

from ._http import check_url, make_http_client
from .base import ITranslator
from .cache import ITranslationCache, MemoryTranslationCache
from .etranslation import MAX_SNIPPET_CHARS, ETranslationTranslator
from .libretranslate import LibreTranslateTranslator
from .none import NoneTranslator
from .service import TranslationService

ENGINES = ("none", "libretranslate", "etranslation")
#: Settings of the service (cache, concurrency) that any engine table may hold.
SERVICE_SETTINGS = frozenset({"cache_entries", "cache_max_age_seconds", "max_concurrent"})
DEFAULT_TIMEOUTS = {"none": 1.0, "libretranslate": 30.0, "etranslation": 300.0}


class _Table:
    """Typed, checked reads from one configuration table; unknown keys are refused."""

    def __init__(self, settings: Mapping[str, object], name: str) -> None:
        if not isinstance(settings, Mapping):
            raise ConfigurationError(f"[{name}] must be a table")
        self._settings = settings
        self._name = name
        self._used: set[str] = set()

    def _get(self, key: str) -> object:
        self._used.add(key)
        return self._settings.get(key)

    def where(self, key: str) -> str:
        return f"[{self._name}] {key}"

    def string(self, key: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self._get(key)
        if value is None:
            if required:
                raise ConfigurationError(f"{self.where(key)} is required")
            return default
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(f"{self.where(key)} must be a non-empty string")
        return value

    def secret(self, key: str, *, required: bool) -> str | None:
        """``key`` given inline, or ``key_file`` naming a file that holds it (not both)."""
        inline = self.string(key)
        path = self.string(f"{key}_file")
        if inline is not None and path is not None:
            raise ConfigurationError(f"[{self._name}] give {key} or {key}_file, not both")
        if path is not None:
            try:
                value = Path(path).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                raise ConfigurationError(
                    f"cannot read {self.where(key + '_file')} {path!r}: {reason}"
                ) from None
            if not value:
                raise ConfigurationError(f"{self.where(key + '_file')} {path!r} is empty")
            return value
        if inline is None and required:
            raise ConfigurationError(f"[{self._name}] {key} (or {key}_file) is required")
        return inline

    def number(
        self, key: str, default: float, *, minimum: float, maximum: float | None = None
    ) -> float:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigurationError(f"{self.where(key)} must be a number")
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"at least {minimum:g}" + (
                f" and at most {maximum:g}" if maximum is not None else ""
            )
            raise ConfigurationError(f"{self.where(key)} must be {bounds}, not {value}")
        return float(value)

    def integer(self, key: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigurationError(f"{self.where(key)} must be an integer")
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"at least {minimum}" + (
                f" and at most {maximum}" if maximum is not None else ""
            )
            raise ConfigurationError(f"{self.where(key)} must be {bounds}, not {value}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigurationError(f"{self.where(key)} must be true or false")
        return value

    def language_codes(self, key: str) -> dict[str, str]:
        value = self._get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigurationError(f'{self.where(key)} must be a table of language = "code"')
        codes: dict[str, str] = {}
        for language, code in value.items():
            if language not in LANGUAGES:
                raise ConfigurationError(
                    f"{self.where(key)}: {language!r} is not an IMI language code"
                )
            if not isinstance(code, str) or not code.strip():
                raise ConfigurationError(
                    f"{self.where(key)}: the code for {language} must be a string"
                )
            codes[language] = code.strip()
        return codes

    def languages(self, key: str) -> list[str] | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigurationError(f"{self.where(key)} must be a list of language codes")
        unknown = [v for v in value if v not in LANGUAGES]
        if unknown:
            raise ConfigurationError(
                f"{self.where(key)}: not IMI language codes: {', '.join(unknown)}"
            )
        return list(value)

    def url(self, key: str, *, allow_insecure_http: bool) -> str:
        value = self.string(key, required=True)
        assert value is not None
        return check_url(value, self.where(key), allow_insecure_http=allow_insecure_http)

    def finish(self, *, ignore: frozenset[str] = frozenset()) -> None:
        unknown = sorted(set(self._settings) - self._used - ignore)
        if unknown:
            raise ConfigurationError(f"unknown setting(s) in [{self._name}]: {', '.join(unknown)}")


def build_translator(
    engine: str,
    settings: Mapping[str, object],
    *,
    reactor: Any,
    clock: IReactorTime | None = None,
    agent: IAgent | None = None,
) -> ITranslator:
    """The adapter for ``engine`` configured from its table ``[translation.<engine>]``.

    ``reactor`` runs the network; ``clock`` (default: ``reactor``) measures
    timeouts; ``agent`` replaces the HTTP agent (tests, or a node-wide one).
    For ``etranslation`` the returned translator's ``callback_resource``
    must be mounted on the node's API listener at the path of
    ``callback_base_url``. Raises ConfigurationError with the setting's name.
    """
    clock = clock if clock is not None else reactor
    if engine not in ENGINES:
        raise ConfigurationError(
            f"[translation] engine must be one of {', '.join(ENGINES)}, not {engine!r}"
        )
    table = _Table(settings, f"translation.{engine}")
    if engine == "none":
        table.finish(ignore=SERVICE_SETTINGS)
        return NoneTranslator()

    allow_http = table.boolean("allow_insecure_http", False)
    url = table.url("url", allow_insecure_http=allow_http)
    timeout = table.number("timeout_seconds", DEFAULT_TIMEOUTS[engine], minimum=0.1, maximum=86400)
    tls_ca_file = table.string("tls_ca_file")
    language_codes = table.language_codes("language_codes")

    if engine == "libretranslate":
        api_key = table.secret("api_key", required=False)
        max_text = table.integer("max_text_chars", 10_000, minimum=1)
        max_response = table.integer("max_response_bytes", 1_048_576, minimum=1024)
        languages_ttl = table.number("languages_ttl_seconds", 3600.0, minimum=1)
        table.finish(ignore=SERVICE_SETTINGS)
        http = make_http_client(reactor, agent=agent, tls_ca_file=tls_ca_file)
        return LibreTranslateTranslator(
            http,
            url,
            clock=clock,
            api_key=api_key,
            timeout=timeout,
            max_text_chars=max_text,
            max_response_bytes=max_response,
            language_codes=language_codes,
            languages_ttl=languages_ttl,
        )

    application = table.string("application", required=True)
    username = table.string("username", required=True)
    password = table.secret("password", required=True)
    callback_base_url = table.url("callback_base_url", allow_insecure_http=allow_http)
    auth_username = table.string("auth_username")
    domain = table.string("domain", default="GEN")
    max_text = table.integer(
        "max_text_chars", MAX_SNIPPET_CHARS, minimum=1, maximum=MAX_SNIPPET_CHARS
    )
    max_response = table.integer("max_response_bytes", 65_536, minimum=1024)
    max_callback = table.integer("max_callback_bytes", 1_048_576, minimum=1024)
    languages = table.languages("languages")
    table.finish(ignore=SERVICE_SETTINGS)
    assert application is not None and username is not None and password is not None
    http = make_http_client(reactor, agent=agent, tls_ca_file=tls_ca_file)
    return ETranslationTranslator(
        http,
        url,
        application=application,
        username=username,
        password=password,
        callback_base_url=callback_base_url,
        clock=clock,
        timeout=timeout,
        auth_username=auth_username,
        domain=domain or "GEN",
        max_text_chars=max_text,
        max_response_bytes=max_response,
        max_callback_bytes=max_callback,
        language_codes=language_codes,
        languages=languages,
    )


def build_translation_service(
    engine: str,
    settings: Mapping[str, object] | None,
    *,
    reactor: Any,
    clock: IReactorTime | None = None,
    agent: IAgent | None = None,
    cache: ITranslationCache | None = None,
) -> TranslationService:
    """The translation service for ``engine`` and its table ``[translation.<engine>]``.

    The node passes ``config.translation.engine`` and
    ``config.translation.settings``. Besides the engine's own settings the
    table may hold the service settings ``cache_entries``,
    ``cache_max_age_seconds`` and ``max_concurrent``. ``cache`` replaces the
    in-memory cache (for a database-backed one).
    """
    clock = clock if clock is not None else reactor
    settings = settings if settings is not None else {}
    if engine not in ENGINES:
        raise ConfigurationError(
            f"[translation] engine must be one of {', '.join(ENGINES)}, not {engine!r}"
        )
    table = _Table(settings, f"translation.{engine}")
    entries = table.integer("cache_entries", 10_000, minimum=1)
    max_age = table.number("cache_max_age_seconds", 86_400.0, minimum=1)
    max_concurrent = table.integer("max_concurrent", 4, minimum=1, maximum=256)
    translator = build_translator(engine, settings, reactor=reactor, clock=clock, agent=agent)
    timeout = table.number("timeout_seconds", DEFAULT_TIMEOUTS[engine], minimum=0.1)
    if cache is None:
        cache = MemoryTranslationCache(entries, max_age=max_age, clock=clock)
    return TranslationService(translator, cache, clock, timeout, max_concurrent=max_concurrent)
