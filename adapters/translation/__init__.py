"""Machine translation of free text, behind one adapter interface.

Engines (``[translation] engine`` in the node configuration):

* ``none`` (the default): no translation; only the original is delivered;
* ``libretranslate``: a self-hosted LibreTranslate server (HTTP JSON API);
* ``etranslation``: the European Commission's eTranslation service
  (asynchronous: it answers through a callback the node serves).

A :class:`Translation` is labelled with its engine and language pair and is
always delivered *next to* the original, never instead of it. The
:class:`TranslationService` caches translations by (SHA-256 of the text,
source, target), enforces timeouts on an injected clock and never blocks or
fails a delivery. Free text is personal data: nothing in this package logs it.

Import as ``gateway.adapters.translation`` (never as a top-level ``adapters``).
See docs/translation.md.
"""

from .base import (
    ITranslator,
    Translation,
    TranslationTimeout,
    TranslationUnavailable,
    UnknownLanguage,
    text_sha256,
)
from .cache import ITranslationCache, MemoryTranslationCache
from .config import ENGINES, build_translation_service, build_translator
from .etranslation import ETranslationCallbackResource, ETranslationRefused, ETranslationTranslator
from .libretranslate import LibreTranslateTranslator
from .none import NoneTranslator
from .service import (
    CACHED,
    FAILED,
    NOT_NEEDED,
    TIMEOUT,
    TRANSLATED,
    UNAVAILABLE,
    FreeTextItem,
    TranslationJob,
    TranslationOutcome,
    TranslationService,
)

__all__ = [
    "CACHED",
    "ENGINES",
    "FAILED",
    "NOT_NEEDED",
    "TIMEOUT",
    "TRANSLATED",
    "UNAVAILABLE",
    "ETranslationCallbackResource",
    "ETranslationRefused",
    "ETranslationTranslator",
    "FreeTextItem",
    "ITranslationCache",
    "ITranslator",
    "LibreTranslateTranslator",
    "MemoryTranslationCache",
    "NoneTranslator",
    "Translation",
    "TranslationJob",
    "TranslationOutcome",
    "TranslationService",
    "TranslationTimeout",
    "TranslationUnavailable",
    "UnknownLanguage",
    "build_translation_service",
    "build_translator",
    "text_sha256",
]
