"""What every machine-translation adapter shares: the labelled result, the
adapter interface and the engine errors.

A :class:`Translation` is always *in addition to* the original free text,
never instead of it: it names its engine and its language pair, carries the
SHA-256 of the exact original it translates, and is marked as machine
translation. Free text and its translations are personal data: the text is
kept out of ``repr`` and error messages, and nothing here logs it.

This module holds no I/O; the adapters (``none``, ``libretranslate``,
``etranslation``) implement :class:`ITranslator` on top of Twisted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from gateway.core.errors import InvalidInput, Unavailable
from gateway.core.localize import text_sha256 as text_sha256  # the cache key of a text
from gateway.core.ns import LANGUAGES

#: Engine names are stable lower-case identifiers: they label every translation.
ENGINE_NAME_RE = re.compile(r"\A[a-z][a-z0-9-]{0,31}\Z")
_SHA256_RE = re.compile(r"\A[0-9a-f]{64}\Z")


class TranslationUnavailable(Unavailable):
    """The machine-translation engine failed; the original text is delivered without a translation."""

    code = "TRANSLATION_UNAVAILABLE"


class TranslationTimeout(TranslationUnavailable):
    """The machine-translation engine did not answer in time; the original text is delivered without a translation."""

    code = "TRANSLATION_TIMEOUT"


class UnknownLanguage(InvalidInput):
    """A language code given for translation is not one of the 27 IMI languages."""

    code = "TRANSLATION_LANGUAGE_UNKNOWN"


def check_language(code: str) -> str:
    """Return ``code`` if it is an IMI language code (``de``, ``nb``, ...), else raise."""
    if code not in LANGUAGES:
        raise UnknownLanguage(
            f"unknown language code {code[:16]!r} (expected one of the IMI codes)"
        )
    return code


@dataclass(frozen=True)
class Translation:
    """A machine translation of one free text into one language.

    It never replaces the original: the delivery carries both, and this
    object says which engine produced it for which language pair
    (``source_lang`` -> ``target_lang``) and which original it belongs to
    (``original_sha256``, the SHA-256 of the original's UTF-8 bytes).
    """

    source_lang: str
    target_lang: str
    engine: str
    #: The translated text (personal data: excluded from repr).
    text: str = field(repr=False)
    original_sha256: str
    #: Always True for the adapters in this package; kept explicit so a
    #: rendering can never present a translation as the original.
    machine: bool = True

    def __post_init__(self) -> None:
        check_language(self.source_lang)
        check_language(self.target_lang)
        if not ENGINE_NAME_RE.match(self.engine):
            raise ValueError(f"invalid engine name {self.engine!r}")
        if not _SHA256_RE.match(self.original_sha256):
            raise ValueError("original_sha256 must be 64 lower-case hex digits")

    @property
    def language_pair(self) -> str:
        """``"de-nb"``: the source and target language codes."""
        return f"{self.source_lang}-{self.target_lang}"

    @property
    def label(self) -> str:
        """The human label a rendering shows next to the translated text."""
        kind = "Machine translation" if self.machine else "Translation"
        return f"{kind} ({self.engine}, {self.source_lang} \u2192 {self.target_lang})"


class ITranslator(Interface):
    """A machine-translation engine behind one method.

    Implementations never block: ``translate`` returns a Deferred at once.
    They never log the text they are given.
    """

    engine = Attribute("Stable engine name (``none``, ``libretranslate``, ...) used in labels.")

    def translate(text: str, source: str, target: str) -> Deferred[Translation | None]:
        """Translate ``text`` from ``source`` into ``target`` (IMI language codes).

        Fires with a :class:`Translation`, or with None when the engine has no
        translation for this text or language pair (the ``none`` engine always
        answers None). Fails with :class:`TranslationUnavailable` (or its
        subclass :class:`TranslationTimeout`) when the engine fails. The
        Deferred may be cancelled; the adapter then forgets the request.
        """

    def close() -> Deferred[None]:
        """Release network connections; called when the node stops."""
