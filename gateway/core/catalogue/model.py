"""The question catalogue's data model: errors, codes, texts, and the look-ups of a version.

:class:`Catalogue` is one catalogue version, immutable once built (by
:mod:`gateway.core.catalogue.load`): look-ups by code, texts with the
documented language fallback (:func:`pick_text`), professions and their
multilingual terms, and :meth:`Catalogue.validate_codes`, which the node
uses to refuse a document that names an unknown question set, question or
option. :class:`CatalogueRegistry` holds every version a node knows.

Import these names from :mod:`gateway.core.catalogue`, which re-exports
them. Pure data and look-ups: no IO at all.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from gateway.core.docxml import sha256_hex
from gateway.core.errors import ConfigurationError, InvalidInput
from gateway.core.ns import LANGUAGES

# --- errors -------------------------------------------------------------------


class CatalogueVersionUnknown(InvalidInput):
    """The catalogue version is not one this node has installed."""

    code = "CATALOGUE_VERSION_UNKNOWN"


class CatalogueCodeUnknown(InvalidInput):
    """A question set, question or option code is not in the catalogue version."""

    code = "CATALOGUE_CODE_UNKNOWN"


class CatalogueLanguageUnknown(InvalidInput):
    """The language is not one of the 27 IMI languages."""

    code = "CATALOGUE_LANGUAGE_UNKNOWN"


class CatalogueAnswerMismatch(InvalidInput):
    """The answer does not fit the question's answer type (an option for a date question, ...)."""

    code = "CATALOGUE_ANSWER_MISMATCH"


class CatalogueInvalid(ConfigurationError):
    """The question catalogue files are invalid (run `imi-gateway catalogue lint`)."""

    code = "CATALOGUE_INVALID"


# --- constants ----------------------------------------------------------------

ANSWER_TYPES = ("yesNoUnknown", "codedChoice", "date", "freeText", "document")
#: Answer types whose answer is an option code.
CODED_ANSWER_TYPES = frozenset({"yesNoUnknown", "codedChoice"})
YES_NO_UNKNOWN = "YES_NO_UNKNOWN"
REVIEWED = "reviewed"
NEEDS_REVIEW = "needs-review"
SOURCE_LANGUAGE = "en"
#: Lint reports a question set with fewer questions as an error.
MIN_QUESTIONS_PER_SET = 10

_LANGUAGE_SET = frozenset(LANGUAGES)

Severity = Literal["error", "warning"]


def _show(value: object) -> str:
    """A code from outside, safe to put in a message: repr'd and capped."""
    text = str(value)
    return repr(text[:64] + ("..." if len(text) > 64 else ""))


def check_language(lang: str) -> str:
    """Return ``lang`` if it is one of the 27 IMI languages, else raise."""
    if lang not in _LANGUAGE_SET:
        raise CatalogueLanguageUnknown(
            f"language {_show(lang)} is not an IMI language ({' '.join(LANGUAGES)})"
        )
    return lang


# --- the model ----------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """One text of the catalogue in one language."""

    lang: str
    text: str
    review: str  # REVIEWED or NEEDS_REVIEW


Texts = Mapping[str, Text]


@dataclass(frozen=True)
class LocalText:
    """A text looked up for a language, after the fallback rules.

    ``lang`` is the language asked for; ``text_lang`` the language of
    ``text``. ``fallback`` is true when they differ (the catalogue has no
    text in ``lang``, so the English source, or failing that the first
    language in ``LANGUAGES`` order that has one, is given).
    """

    code: str
    lang: str
    text: str
    text_lang: str
    fallback: bool
    review: str


@dataclass(frozen=True)
class Option:
    """A coded answer (from an option list or inline in a question)."""

    code: str
    texts: Texts


@dataclass(frozen=True)
class OptionList:
    """A shared list of options (defined in a ``common`` file)."""

    code: str
    options: tuple[Option, ...]
    file: str

    def option(self, code: str) -> Option:
        for option in self.options:
            if option.code == code:
                return option
        raise CatalogueCodeUnknown(f"option {_show(code)} is not in option list {self.code}")


@dataclass(frozen=True)
class Question:
    """A standard question.

    ``options`` are the resolved options (from ``option_list`` or inline);
    they are empty for date, freeText and document questions.
    """

    code: str
    answer_type: str
    question_set: str
    area: str
    texts: Texts
    option_list: str | None
    options: tuple[Option, ...]
    file: str

    @property
    def takes_option(self) -> bool:
        """True when the answer is an option code."""
        return self.answer_type in CODED_ANSWER_TYPES

    def option(self, code: str) -> Option:
        """The option ``code`` of this question, or raise CATALOGUE_CODE_UNKNOWN."""
        for option in self.options:
            if option.code == code:
                return option
        raise CatalogueCodeUnknown(f"option {_show(code)} is not an answer to question {self.code}")


@dataclass(frozen=True)
class Profession:
    """A regulated profession and its terms per language (several terms a language)."""

    code: str
    terms: Mapping[str, tuple[str, ...]]
    file: str
    #: Per language: REVIEWED when every term in it is marked reviewed.
    review: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class QuestionSet:
    """A question set of an area, optionally for one profession."""

    code: str
    area: str
    titles: Texts
    profession: str | None
    questions: tuple[Question, ...]
    file: str

    @property
    def question_codes(self) -> tuple[str, ...]:
        return tuple(q.code for q in self.questions)


@dataclass(frozen=True)
class Area:
    """A legislation area (e.g. PQD, Directive 2005/36/EC)."""

    code: str
    legislation: str
    titles: Texts
    question_sets: tuple[str, ...]
    file: str


@dataclass(frozen=True)
class CatalogueFile:
    """One file of a catalogue version: its name, SHA-256 and bytes."""

    name: str
    sha256: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Issue:
    """A problem found by the loader or by lint.

    ``kind`` is a stable lower-case string (see docs/catalogue.md for the
    list); ``code`` the catalogue code concerned (may be empty); ``langs``
    the languages concerned (for missing texts).
    """

    severity: Severity
    kind: str
    message: str
    code: str = ""
    file: str = ""
    line: int | None = None
    langs: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        parts = [self.severity, self.kind]
        if self.code:
            parts.append(self.code)
        text = "  ".join(parts)
        return f"{text}  {where + ': ' if where else ''}{self.message}"


Entry = Area | QuestionSet | Question | OptionList | Profession


def catalogue_digest(files: Iterable[tuple[str, bytes]]) -> str:
    """The digest of a catalogue version, hex.

    SHA-256 over the lines ``<sha256 hex of the file>  <file name>\\n``, one
    a file, sorted by file name: exactly the output of
    ``LC_ALL=C sha256sum *.xml`` in the version directory, so that
    ``(cd schemas/catalogue/2026.1 && LC_ALL=C sha256sum *.xml | sha256sum)``
    reproduces it without this code.
    """
    manifest = "".join(
        f"{sha256_hex(data)}  {name}\n"
        for name, data in sorted(files, key=lambda f: f[0].encode("utf-8"))
    )
    return sha256_hex(manifest.encode("utf-8"))


def _fold(text: str) -> str:
    """Case- and accent-insensitive form for search (Ärztin -> arztin)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class Catalogue:
    """One catalogue version, immutable once built.

    Built by :func:`load_catalogue_dir`. ``problems`` holds what the loader
    found (always empty for a catalogue loaded with ``check=True``, apart
    from warnings).
    """

    def __init__(
        self,
        *,
        version: str,
        files: Sequence[CatalogueFile],
        areas: Mapping[str, Area],
        question_sets: Mapping[str, QuestionSet],
        option_lists: Mapping[str, OptionList],
        professions: Mapping[str, Profession],
        problems: Sequence[Issue] = (),
    ) -> None:
        self.version = version
        self.files = tuple(sorted(files, key=lambda f: f.name))
        self.digest = catalogue_digest((f.name, f.data) for f in self.files)
        self.areas: Mapping[str, Area] = MappingProxyType(dict(sorted(areas.items())))
        self.question_sets: Mapping[str, QuestionSet] = MappingProxyType(
            dict(sorted(question_sets.items()))
        )
        self.option_lists: Mapping[str, OptionList] = MappingProxyType(
            dict(sorted(option_lists.items()))
        )
        self.profession_map: Mapping[str, Profession] = MappingProxyType(
            dict(sorted(professions.items()))
        )
        questions: dict[str, Question] = {}
        for qset in self.question_sets.values():
            for question in qset.questions:
                questions.setdefault(question.code, question)
        self.questions: Mapping[str, Question] = MappingProxyType(questions)
        self.problems = tuple(problems)

    def __repr__(self) -> str:
        return f"<Catalogue {self.version} sha256:{self.digest[:12]}>"

    # -- look-ups ----------------------------------------------------------------

    def area(self, code: str) -> Area:
        try:
            return self.areas[code]
        except (KeyError, TypeError):
            raise CatalogueCodeUnknown(
                f"area {_show(code)} is not in catalogue {self.version}"
            ) from None

    def question_set(self, code: str) -> QuestionSet:
        try:
            return self.question_sets[code]
        except (KeyError, TypeError):
            raise CatalogueCodeUnknown(
                f"question set {_show(code)} is not in catalogue {self.version}"
            ) from None

    def question(self, code: str) -> Question:
        """The question ``code``, or raise CATALOGUE_CODE_UNKNOWN."""
        try:
            return self.questions[code]
        except (KeyError, TypeError):
            raise CatalogueCodeUnknown(
                f"question {_show(code)} is not in catalogue {self.version}"
            ) from None

    def option_list(self, code: str) -> OptionList:
        try:
            return self.option_lists[code]
        except (KeyError, TypeError):
            raise CatalogueCodeUnknown(
                f"option list {_show(code)} is not in catalogue {self.version}"
            ) from None

    def option(self, question_code: str, option_code: str) -> Option:
        """Option ``option_code`` of question ``question_code``, or raise CATALOGUE_CODE_UNKNOWN."""
        return self.question(question_code).option(option_code)

    def profession(self, code: str) -> Profession:
        try:
            return self.profession_map[code]
        except (KeyError, TypeError):
            raise CatalogueCodeUnknown(
                f"profession {_show(code)} is not in catalogue {self.version}"
            ) from None

    def lookup(self, code: str) -> Entry:
        """The area, question set, question, option list or profession named ``code``."""
        for table in (
            self.areas,
            self.question_sets,
            self.questions,
            self.option_lists,
            self.profession_map,
        ):
            entry = table.get(code)
            if entry is not None:
                return entry
        raise CatalogueCodeUnknown(f"{_show(code)} is not a code of catalogue {self.version}")

    # -- texts -------------------------------------------------------------------

    def text(self, code: str, lang: str, option: str | None = None) -> LocalText:
        """The text of ``code`` in ``lang``, with the fallback rules.

        ``code`` is an area or question-set code (its title) or a question
        code (its text); with ``option`` the text of that option of the
        question (or of the option list ``code``). Fallback: the text in
        ``lang`` if the catalogue has a non-empty one; else the English
        source; else the first language in ``LANGUAGES`` order that has one.
        ``fallback`` is set in the last two cases.
        """
        check_language(lang)
        texts: Texts
        if option is not None:
            if code in self.option_lists:
                texts = self.option_lists[code].option(option).texts
            else:
                texts = self.option(code, option).texts
            key = option
        else:
            entry = self.lookup(code)
            if isinstance(entry, Area | QuestionSet):
                texts = entry.titles
            elif isinstance(entry, Question):
                texts = entry.texts
            else:
                raise CatalogueCodeUnknown(f"{_show(code)} has no text of its own")
            key = code
        return pick_text(key, texts, lang)

    # -- professions -------------------------------------------------------------

    def professions(self) -> dict[str, dict[str, list[str]]]:
        """{profession code: {lang: [terms]}} for every profession."""
        return {
            code: {lang: list(terms) for lang, terms in prof.terms.items()}
            for code, prof in self.profession_map.items()
        }

    def question_sets_for_profession(self, profession: str) -> tuple[QuestionSet, ...]:
        """The question sets of a profession code (empty if there are none)."""
        return tuple(s for s in self.question_sets.values() if s.profession == profession)

    def question_sets_by_profession(self) -> dict[str, list[str]]:
        """{profession code: [question set codes]}."""
        result: dict[str, list[str]] = {}
        for qset in self.question_sets.values():
            if qset.profession is not None:
                result.setdefault(qset.profession, []).append(qset.code)
        return result

    def find_professions(self, query: str, lang: str | None = None) -> list[str]:
        """Profession codes with a term containing ``query`` (case and accents ignored).

        ``lang`` restricts the search to that language's terms. An empty
        query finds nothing.
        """
        if lang is not None:
            check_language(lang)
        needle = _fold(query.strip())
        if not needle:
            return []
        found = []
        for code, prof in self.profession_map.items():
            for term_lang, terms in prof.terms.items():
                if lang is not None and term_lang != lang:
                    continue
                if any(needle in _fold(term) for term in terms):
                    found.append(code)
                    break
        return found

    # -- checking documents ------------------------------------------------------

    def validate_codes(
        self,
        question_set: str | None,
        question_codes: Iterable[str],
        option_codes: Iterable[tuple[str, str]] | Mapping[str, str] = (),
    ) -> None:
        """Refuse codes a document may not use, with CATALOGUE_CODE_UNKNOWN.

        ``question_set``: the set the document's questions come from (None:
        any set of this version). ``question_codes``: every question code the
        document names. ``option_codes``: (question code, option code) pairs,
        or a mapping question code -> option code, for every coded answer.
        An option for a question that takes none is CATALOGUE_ANSWER_MISMATCH.
        """
        qset = self.question_set(question_set) if question_set is not None else None
        allowed = frozenset(qset.question_codes) if qset is not None else None

        def check_question(code: str) -> Question:
            question = self.question(code)
            if allowed is not None and code not in allowed:
                raise CatalogueCodeUnknown(
                    f"question {_show(code)} is not in question set {question_set}"
                )
            return question

        for code in question_codes:
            check_question(code)
        pairs = option_codes.items() if isinstance(option_codes, Mapping) else option_codes
        for question_code, option_code in pairs:
            question = check_question(question_code)
            if not question.takes_option:
                raise CatalogueAnswerMismatch(
                    f"question {question.code} is a {question.answer_type} question; "
                    "it takes no option code"
                )
            question.option(option_code)

    # -- counts ------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        return {
            "files": len(self.files),
            "areas": len(self.areas),
            "question_sets": len(self.question_sets),
            "questions": len(self.questions),
            "option_lists": len(self.option_lists),
            "professions": len(self.profession_map),
        }


def pick_text(code: str, texts: Texts, lang: str) -> LocalText:
    """Apply the fallback rules of :meth:`Catalogue.text` to one set of texts."""
    chosen = texts.get(lang)
    if chosen is not None and chosen.text:
        return LocalText(code, lang, chosen.text, lang, False, chosen.review)
    for other in (SOURCE_LANGUAGE, *LANGUAGES):
        candidate = texts.get(other)
        if candidate is not None and candidate.text:
            return LocalText(code, lang, candidate.text, other, True, candidate.review)
    # Only reachable with data that lint reports as broken (every text empty).
    return LocalText(code, lang, code, SOURCE_LANGUAGE, True, NEEDS_REVIEW)


class CatalogueRegistry:
    """Every catalogue version a node knows, by version string."""

    def __init__(self, catalogues: Iterable[Catalogue]) -> None:
        by_version: dict[str, Catalogue] = {}
        for catalogue in catalogues:
            if catalogue.version in by_version:
                raise CatalogueInvalid(f"catalogue version {catalogue.version} is defined twice")
            by_version[catalogue.version] = catalogue
        self._by_version = dict(sorted(by_version.items(), key=lambda kv: _version_key(kv[0])))

    @property
    def versions(self) -> tuple[str, ...]:
        """Installed versions, oldest first."""
        return tuple(self._by_version)

    @property
    def latest(self) -> Catalogue:
        """The newest installed version."""
        if not self._by_version:
            raise CatalogueInvalid("no catalogue version is installed")
        return self._by_version[self.versions[-1]]

    def get(self, version: str) -> Catalogue:
        """The catalogue ``version``, or raise CATALOGUE_VERSION_UNKNOWN."""
        try:
            return self._by_version[version]
        except (KeyError, TypeError):
            known = ", ".join(self.versions) or "none"
            raise CatalogueVersionUnknown(
                f"catalogue version {_show(version)} is not installed (installed: {known})"
            ) from None

    def __contains__(self, version: object) -> bool:
        return version in self._by_version

    def __iter__(self) -> Iterator[Catalogue]:
        return iter(self._by_version.values())

    def __len__(self) -> int:
        return len(self._by_version)

    def validate_codes(
        self,
        version: str,
        question_set: str | None,
        question_codes: Iterable[str],
        option_codes: Iterable[tuple[str, str]] | Mapping[str, str] = (),
    ) -> Catalogue:
        """Check a document's catalogue version and codes; return that catalogue.

        Raises CATALOGUE_VERSION_UNKNOWN, CATALOGUE_CODE_UNKNOWN or
        CATALOGUE_ANSWER_MISMATCH (see :meth:`Catalogue.validate_codes`).
        """
        catalogue = self.get(version)
        catalogue.validate_codes(question_set, question_codes, option_codes)
        return catalogue


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))
