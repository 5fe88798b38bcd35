"""Rendering a document's standard questions and coded answers into the node's languages.

A receiving node hands its national system the original signed bytes plus a
*rendering*: for each of the node's languages, the catalogue texts of the
question set, of every question the document names and of every option
chosen as an answer (docs/protocol.md §6.4, Delivery). This module computes that rendering
as plain dataclasses; the delivery code turns it into XML (the delivery XSD
lives in schemas/delivery.xsd and is not this module's business).

Texts follow :meth:`gateway.core.catalogue.Catalogue.text`: the requested
language, else the English source marked ``fallback``. Dates and free text
are values, not catalogue texts: they are not copied into the rendering.
Free text in a language other than a target language is listed in
``Rendering.translation_requests``; a machine-translation adapter fills
``Rendering.translations`` with :meth:`Rendering.with_translations`, always
labelled with the engine and never replacing the original (which stays in
the signed document).

Renderings hold no personal data except machine translations of free text;
callers store them encrypted with the exchange like the rest of its data.
Sans-IO.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.core.catalogue import (
    Catalogue,
    CatalogueAnswerMismatch,
    CatalogueCodeUnknown,
    Texts,
    check_language,
    pick_text,
)
from gateway.core.errors import InvalidInput

__all__ = [
    "Item",
    "MachineTranslation",
    "RenderedText",
    "Rendering",
    "TranslationRequest",
    "render",
]

Kind = Literal["questionSet", "question", "option"]

_ISO_DATE = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


@dataclass(frozen=True)
class Item:
    """One question of a document, with its answer if the document is an answer.

    ``option``: the chosen option code (yesNoUnknown and codedChoice
    questions); ``date``: an ISO 8601 date (date questions); ``free_text``
    with ``free_text_lang``: free text attached to the question (any
    question may carry free text; freeText questions are answered with it).
    """

    question: str
    option: str | None = None
    date: str | None = None
    free_text: str | None = None
    free_text_lang: str | None = None


@dataclass(frozen=True)
class RenderedText:
    """A catalogue text in one target language.

    ``code`` is the question-set, question or option code; ``question`` the
    question it belongs to (empty for a question-set title); ``lang`` the
    target language; ``text_lang`` the language ``text`` is in (differs from
    ``lang`` exactly when ``fallback`` is true).
    """

    code: str
    lang: str
    text: str
    fallback: bool
    text_lang: str
    kind: Kind
    question: str = ""


@dataclass(frozen=True)
class TranslationRequest:
    """Free text that needs machine translation into a target language."""

    question: str
    source_lang: str
    target_lang: str
    text: str


@dataclass(frozen=True)
class MachineTranslation:
    """A machine translation of a question's free text, labelled with its engine."""

    question: str
    engine: str
    source_lang: str
    target_lang: str
    text: str


@dataclass(frozen=True)
class Rendering:
    """A document rendered into the node's languages."""

    catalogue_version: str
    catalogue_digest: str
    languages: tuple[str, ...]
    texts: tuple[RenderedText, ...]
    translation_requests: tuple[TranslationRequest, ...] = ()
    translations: tuple[MachineTranslation, ...] = ()

    def for_language(self, lang: str) -> tuple[RenderedText, ...]:
        """The texts of one target language, in document order."""
        return tuple(t for t in self.texts if t.lang == lang)

    def text(self, code: str, lang: str, question: str | None = None) -> RenderedText:
        """The rendered text of ``code`` (an option needs its ``question``) in ``lang``."""
        for entry in self.texts:
            if entry.code == code and entry.lang == lang:
                if question is None or entry.question == question:
                    return entry
        raise CatalogueCodeUnknown(f"{code!r} is not rendered in {lang!r}")

    @property
    def has_fallback(self) -> bool:
        """True when some text is not in its target language."""
        return any(t.fallback for t in self.texts)

    def with_translations(self, translations: Iterable[MachineTranslation]) -> Rendering:
        """A copy carrying ``translations`` (added to any already present).

        A translation must answer one of ``translation_requests``.
        """
        wanted = {(r.question, r.source_lang, r.target_lang) for r in self.translation_requests}
        added = tuple(translations)
        for t in added:
            if (t.question, t.source_lang, t.target_lang) not in wanted:
                raise InvalidInput(
                    f"no free text of question {t.question} needs translation "
                    f"from {t.source_lang} to {t.target_lang}"
                )
            if not t.engine:
                raise InvalidInput("a machine translation must name its engine")
        return dataclasses.replace(self, translations=self.translations + added)


def render(
    catalogue: Catalogue,
    items: Iterable[Item],
    languages: Sequence[str],
    *,
    question_set: str | None = None,
) -> Rendering:
    """Render ``items`` (and the title of ``question_set``) into ``languages``.

    Raises CATALOGUE_CODE_UNKNOWN for an unknown set, question or option
    (or a question outside ``question_set``), CATALOGUE_ANSWER_MISMATCH for
    an answer that does not fit the question's answer type, and
    CATALOGUE_LANGUAGE_UNKNOWN for a language outside the 27.
    Each question and option is rendered once a language, in first-seen order.
    """
    targets = tuple(dict.fromkeys(check_language(lang) for lang in languages))
    if not targets:
        raise InvalidInput("a rendering needs at least one language")
    qset = catalogue.question_set(question_set) if question_set is not None else None
    allowed = frozenset(qset.question_codes) if qset is not None else None

    entries: list[tuple[Kind, str, str, Texts]] = []  # kind, code, question, texts
    seen: set[tuple[str, str]] = set()
    requests: list[TranslationRequest] = []
    if qset is not None:
        entries.append(("questionSet", qset.code, "", qset.titles))
    for item in items:
        question = catalogue.question(item.question)
        if allowed is not None and question.code not in allowed:
            raise CatalogueCodeUnknown(
                f"question {question.code} is not in question set {question_set}"
            )
        _check_answer(question.answer_type, question.code, item)
        if ("", question.code) not in seen:
            seen.add(("", question.code))
            entries.append(("question", question.code, question.code, question.texts))
        if item.option is not None:
            option = question.option(item.option)
            if (question.code, option.code) not in seen:
                seen.add((question.code, option.code))
                entries.append(("option", option.code, question.code, option.texts))
        if item.free_text:
            source = check_language(item.free_text_lang or "")
            for target in targets:
                if target != source:
                    requests.append(
                        TranslationRequest(question.code, source, target, item.free_text)
                    )

    texts = []
    for lang in targets:
        for kind, code, question_code, entry_texts in entries:
            local = pick_text(code, entry_texts, lang)
            texts.append(
                RenderedText(
                    code=code,
                    lang=lang,
                    text=local.text,
                    fallback=local.fallback,
                    text_lang=local.text_lang,
                    kind=kind,
                    question=question_code,
                )
            )
    return Rendering(
        catalogue_version=catalogue.version,
        catalogue_digest=catalogue.digest,
        languages=targets,
        texts=tuple(texts),
        translation_requests=tuple(dict.fromkeys(requests)),
    )


def _check_answer(answer_type: str, code: str, item: Item) -> None:
    if item.option is not None and answer_type not in ("yesNoUnknown", "codedChoice"):
        raise CatalogueAnswerMismatch(
            f"question {code} is a {answer_type} question; it takes no option code"
        )
    if item.date is not None:
        if answer_type != "date":
            raise CatalogueAnswerMismatch(
                f"question {code} is a {answer_type} question; it takes no date"
            )
        try:
            if not _ISO_DATE.match(item.date):
                raise ValueError(item.date)
            datetime.date.fromisoformat(item.date)
        except ValueError:
            raise CatalogueAnswerMismatch(
                f"the answer to question {code} is not an ISO 8601 date (YYYY-MM-DD)"
            ) from None
    if item.free_text and not item.free_text_lang:
        raise InvalidInput(f"the free text of question {code} has no language")
