"""The question catalogue: loading, validation, look-ups, lint.

The catalogue holds the standard questions of every legislation area, their
coded answers and their texts in the 27 IMI languages. It is *data*: a
version is a directory ``schemas/catalogue/<VERSION>/`` (installed as
``gateway.schemas``) whose ``*.xml`` files each have one of three roots
(``common``, ``area``, ``questionSets``; see ``schemas/catalogue/catalogue.xsd``
and docs/catalogue.md). Adding a legislation area is adding a file.

What lives here:

* :func:`load_catalogues` (every installed version, loaded and validated once
  and cached) and :func:`load_catalogue_dir` (one version from any directory);
* :class:`Catalogue`: look-ups by code, texts with the documented language
  fallback, professions and their multilingual terms, and
  :meth:`Catalogue.validate_codes`, which the node uses to refuse a document
  that names an unknown version, question set, question or option;
* :func:`lint`: language coverage and review status per language, and the
  problems a data author must fix.

Loading checks, in this order: hardened parsing (``gateway.core.xmlparse``;
comments are allowed because these are trusted package files), the XSD 1.0
subset of catalogue.xsd (compiled once with lxml), then the rules that span
files (unique codes, option-list references, areas named by ``questionSets``,
answer types and their options, code prefixes). A problem of the first two
kinds, or any rule error, makes :func:`load_catalogue_dir` raise
``CATALOGUE_INVALID`` unless it is called with ``check=False`` (as lint does,
to report everything at once).

Sans-IO apart from reading the catalogue files themselves; nothing here
touches the network, a database or the clock.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pathlib
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from types import MappingProxyType
from typing import Any, Literal

from lxml import etree

from gateway.core.errors import ConfigurationError, GatewayError, InvalidInput
from gateway.core.ns import CATALOGUE_NS, LANGUAGES
from gateway.core.xmlparse import ParseLimits, parse_xml

__all__ = [
    "ANSWER_TYPES",
    "MIN_QUESTIONS_PER_SET",
    "Area",
    "Catalogue",
    "CatalogueAnswerMismatch",
    "CatalogueCodeUnknown",
    "CatalogueFile",
    "CatalogueInvalid",
    "CatalogueLanguageUnknown",
    "CatalogueRegistry",
    "CatalogueVersionUnknown",
    "Issue",
    "LanguageCoverage",
    "LintReport",
    "LocalText",
    "Option",
    "OptionList",
    "Profession",
    "Question",
    "QuestionSet",
    "Text",
    "catalogue_digest",
    "check_language",
    "lint",
    "load_catalogue_dir",
    "load_catalogue_root",
    "load_catalogues",
    "package_catalogue_root",
    "pick_text",
    "validate_codes",
]

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

#: A catalogue version: the year, a dot and a sequence number (``2026.1``).
VERSION_RE = re.compile(r"\A[0-9]{4}\.[0-9]{1,4}\Z")

ANSWER_TYPES = ("yesNoUnknown", "codedChoice", "date", "freeText", "document")
#: Answer types whose answer is an option code.
CODED_ANSWER_TYPES = frozenset({"yesNoUnknown", "codedChoice"})
YES_NO_UNKNOWN = "YES_NO_UNKNOWN"
REVIEWED = "reviewed"
NEEDS_REVIEW = "needs-review"
SOURCE_LANGUAGE = "en"
#: Lint reports a question set with fewer questions as an error.
MIN_QUESTIONS_PER_SET = 10

_NS = "{" + CATALOGUE_NS + "}"
_XS = "{http://www.w3.org/2001/XMLSchema}"
_LIMITS = ParseLimits(max_bytes=8 * 1024 * 1024, max_depth=16, allow_comments=True)
_MAX_SCHEMA_ERRORS_PER_FILE = 20
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
        f"{hashlib.sha256(data).hexdigest()}  {name}\n"
        for name, data in sorted(files, key=lambda f: f[0].encode("utf-8"))
    )
    return hashlib.sha256(manifest.encode("utf-8")).hexdigest()


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


# --- loading ------------------------------------------------------------------


def package_catalogue_root() -> Traversable:
    """The installed catalogue directory (``gateway.schemas/catalogue``), versions inside."""
    return resources.files("gateway.schemas").joinpath("catalogue")


@functools.cache
def _schema() -> etree.XMLSchema:
    """catalogue.xsd without its XSD 1.1 assertions, compiled once with lxml."""
    data = package_catalogue_root().joinpath("catalogue.xsd").read_bytes()
    root = parse_xml(data, _LIMITS)
    for assertion in list(root.iter(_XS + "assert")):
        parent = assertion.getparent()
        if parent is not None:
            parent.remove(assertion)
    return etree.XMLSchema(root)


def _as_traversable(path: str | os.PathLike[str] | Traversable) -> Traversable:
    if isinstance(path, str | os.PathLike):
        return pathlib.Path(path)
    return path


def _catalogue_files(directory: Traversable) -> list[Traversable]:
    if not directory.is_dir():
        raise CatalogueInvalid(f"catalogue directory {directory} does not exist")
    files = [
        entry
        for entry in directory.iterdir()
        if entry.name.endswith(".xml") and not entry.name.startswith(".") and entry.is_file()
    ]
    return sorted(files, key=lambda entry: entry.name.encode("utf-8"))


def load_catalogue_dir(
    path: str | os.PathLike[str] | Traversable,
    version: str | None = None,
    *,
    check: bool = True,
) -> Catalogue:
    """Load the catalogue version in directory ``path`` (its ``*.xml`` files).

    ``version`` defaults to the directory's name and must look like
    ``2026.1``. With ``check`` (the default) any error raises
    CATALOGUE_INVALID; with ``check=False`` files that do not parse or
    validate are skipped and every problem is recorded in
    ``Catalogue.problems`` for :func:`lint` to report.
    """
    directory = _as_traversable(path)
    version = directory.name if version is None else version
    if not VERSION_RE.match(version):
        raise CatalogueInvalid(
            f"catalogue version {_show(version)} is not of the form YYYY.N (e.g. 2026.1)"
        )
    entries = _catalogue_files(directory)
    if not entries:
        raise CatalogueInvalid(f"catalogue version {version} has no *.xml files in {directory}")
    builder = _Builder(version)
    files = []
    for entry in entries:
        data = entry.read_bytes()
        files.append(CatalogueFile(entry.name, hashlib.sha256(data).hexdigest(), data))
        root = builder.parse(entry.name, data)
        if root is not None:
            builder.add(entry.name, root)
    catalogue = builder.build(files)
    if check:
        errors = [issue for issue in catalogue.problems if issue.severity == "error"]
        if errors:
            shown = "; ".join(str(issue) for issue in errors[:3])
            more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
            raise CatalogueInvalid(
                f"catalogue {version} is invalid: {shown}{more}; run 'imi-gateway catalogue lint'"
            )
    return catalogue


def load_catalogue_root(
    path: str | os.PathLike[str] | Traversable, *, check: bool = True
) -> CatalogueRegistry:
    """Load every version directory (named like ``2026.1``) under ``path``."""
    root = _as_traversable(path)
    if not root.is_dir():
        raise CatalogueInvalid(f"catalogue root {root} does not exist")
    directories = sorted(
        (entry for entry in root.iterdir() if entry.is_dir() and VERSION_RE.match(entry.name)),
        key=lambda entry: _version_key(entry.name),
    )
    return CatalogueRegistry(load_catalogue_dir(d, check=check) for d in directories)


@functools.cache
def load_catalogues() -> CatalogueRegistry:
    """Every installed catalogue version, loaded and validated once (cached)."""
    return load_catalogue_root(package_catalogue_root(), check=True)


def validate_codes(
    version: str,
    question_set: str | None,
    question_codes: Iterable[str],
    option_codes: Iterable[tuple[str, str]] | Mapping[str, str] = (),
) -> Catalogue:
    """:meth:`CatalogueRegistry.validate_codes` on the installed catalogues."""
    return load_catalogues().validate_codes(version, question_set, question_codes, option_codes)


def _line(element: etree._Element) -> int | None:
    line = element.sourceline
    return line if isinstance(line, int) else None


def _texts(elements: Iterable[etree._Element]) -> Texts:
    result: dict[str, Text] = {}
    for element in elements:
        lang = element.get("lang", "")
        text = " ".join((element.text or "").split())
        result.setdefault(lang, Text(lang, text, element.get("review", NEEDS_REVIEW)))
    return MappingProxyType(result)


def _options(parent: etree._Element) -> tuple[Option, ...]:
    return tuple(
        Option(option.get("code", ""), _texts(option.iterchildren(_NS + "text")))
        for option in parent.iterchildren(_NS + "option")
    )


@dataclass
class _RawSet:
    element: etree._Element
    area: str
    file: str


class _Builder:
    """Collects the content of a version's files, then resolves references."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.problems: list[Issue] = []
        self.codes: dict[str, tuple[str, str]] = {}  # code -> (kind, file)
        self.areas: dict[str, Area] = {}
        self.raw_sets: list[_RawSet] = []
        self.option_lists: dict[str, OptionList] = {}
        self.professions: dict[str, Profession] = {}

    def error(self, kind: str, message: str, **where: Any) -> None:
        self.problems.append(Issue("error", kind, message, **where))

    def warning(self, kind: str, message: str, **where: Any) -> None:
        self.problems.append(Issue("warning", kind, message, **where))

    def parse(self, name: str, data: bytes) -> etree._Element | None:
        try:
            root = parse_xml(data, _LIMITS)
        except GatewayError as exc:
            self.error("xml-invalid", f"{exc.code}: {exc}", file=name)
            return None
        schema = _schema()
        if not schema.validate(root):
            log: Iterable[Any] = schema.error_log  # type: ignore[assignment]
            # libxml2 follows an invalid key value with a "No precomputed value" note
            # from the identity constraint: noise next to the real error.
            entries = [e for e in log if "No precomputed value" not in e.message]
            for entry in entries[:_MAX_SCHEMA_ERRORS_PER_FILE]:
                self.error("schema-invalid", entry.message, file=name, line=entry.line)
            return None
        return root

    def claim(self, code: str, kind: str, file: str, line: int | None) -> bool:
        """Register a code in the version's one namespace; False if taken."""
        previous = self.codes.get(code)
        if previous is not None:
            self.error(
                "duplicate-code",
                f"{kind} {code} is already defined as {previous[0]} in {previous[1]}",
                code=code,
                file=file,
                line=line,
            )
            return False
        self.codes[code] = (kind, file)
        return True

    def add(self, name: str, root: etree._Element) -> None:
        tag = etree.QName(root).localname
        if tag == "common":
            for element in root.iterchildren(_NS + "optionList"):
                code = element.get("code", "")
                if self.claim(code, "option list", name, _line(element)):
                    self.option_lists[code] = OptionList(code, _options(element), name)
        elif tag == "area":
            code = root.get("code", "")
            if self.claim(code, "area", name, _line(root)):
                self.areas[code] = Area(
                    code,
                    root.get("legislation", ""),
                    _texts(root.iterchildren(_NS + "title")),
                    (),
                    name,
                )
            for element in root.iterchildren(_NS + "questionSet"):
                self.raw_sets.append(_RawSet(element, code, name))
        else:  # questionSets (the XSD admits no other root)
            area = root.get("area", "")
            for element in root.iterchildren(_NS + "questionSet"):
                self.raw_sets.append(_RawSet(element, area, name))

    def build(self, files: Sequence[CatalogueFile]) -> Catalogue:
        sets: dict[str, QuestionSet] = {}
        set_professions: list[tuple[str, str, str, int | None]] = []
        for raw in self.raw_sets:
            qset = self._build_set(raw)
            if qset is None:
                continue
            sets[qset.code] = qset
            if qset.profession is not None:
                set_professions.append((qset.code, qset.profession, raw.file, _line(raw.element)))
        for set_code, profession, file, line in set_professions:
            if profession not in self.professions:
                self.error(
                    "unknown-profession",
                    f"question set {set_code} names profession {profession}, "
                    "which no <profession> element defines",
                    code=set_code,
                    file=file,
                    line=line,
                )
        areas = {}
        for code, area in self.areas.items():
            set_codes = tuple(sorted(s.code for s in sets.values() if s.area == code))
            areas[code] = Area(area.code, area.legislation, area.titles, set_codes, area.file)
        return Catalogue(
            version=self.version,
            files=files,
            areas=areas,
            question_sets=sets,
            option_lists=self.option_lists,
            professions=self.professions,
            problems=self.problems,
        )

    def _build_set(self, raw: _RawSet) -> QuestionSet | None:
        element, file = raw.element, raw.file
        code = element.get("code", "")
        line = _line(element)
        if not self.claim(code, "question set", file, line):
            return None
        if raw.area not in self.areas:
            self.error(
                "unknown-area",
                f"question set {code} belongs to area {raw.area}, which no file of "
                f"version {self.version} defines",
                code=code,
                file=file,
                line=line,
            )
        elif not code.startswith(raw.area + "-"):
            self.warning(
                "set-code-prefix",
                f"question set code {code} does not start with its area's code {raw.area}-",
                code=code,
                file=file,
                line=line,
            )
        profession = element.get("profession")
        prof_element = element.find(_NS + "profession")
        if prof_element is not None:
            prof_code = prof_element.get("code", "")
            if profession is not None and profession != prof_code:
                self.error(
                    "profession-mismatch",
                    f"question set {code} has profession={profession} but defines "
                    f"<profession code={prof_code}>",
                    code=code,
                    file=file,
                    line=_line(prof_element),
                )
            profession = profession or prof_code
            self._add_profession(prof_element, file)
        questions = []
        for q_element in element.iterchildren(_NS + "question"):
            question = self._build_question(q_element, code, raw.area, file)
            if question is not None:
                questions.append(question)
        return QuestionSet(
            code,
            raw.area,
            _texts(element.iterchildren(_NS + "title")),
            profession,
            tuple(questions),
            file,
        )

    def _add_profession(self, element: etree._Element, file: str) -> None:
        code = element.get("code", "")
        if code in self.professions:
            self.error(
                "duplicate-code",
                f"profession {code} is already defined in {self.professions[code].file}",
                code=code,
                file=file,
                line=_line(element),
            )
            return
        terms: dict[str, list[str]] = {}
        review: dict[str, str] = {}
        for term in element.iterchildren(_NS + "term"):
            lang = term.get("lang", "")
            text = " ".join((term.text or "").split())
            if text and text not in terms.setdefault(lang, []):
                terms[lang].append(text)
            if term.get("review", NEEDS_REVIEW) != REVIEWED or review.get(lang) == NEEDS_REVIEW:
                review[lang] = NEEDS_REVIEW
            else:
                review[lang] = REVIEWED
        self.professions[code] = Profession(
            code,
            MappingProxyType({lang: tuple(values) for lang, values in terms.items() if values}),
            file,
            MappingProxyType(review),
        )

    def _build_question(
        self, element: etree._Element, set_code: str, area: str, file: str
    ) -> Question | None:
        code = element.get("code", "")
        line = _line(element)
        if not self.claim(code, "question", file, line):
            return None
        where: dict[str, Any] = {"code": code, "file": file, "line": line}
        if not code.startswith(set_code + "-"):
            self.error(
                "question-code-prefix",
                f"question code {code} does not start with its set's code {set_code}-",
                **where,
            )
        answer_type = element.get("answerType", "")
        list_code = element.get("options")
        inline = _options(element)
        options: tuple[Option, ...] = ()
        if answer_type == "yesNoUnknown":
            if list_code not in (None, YES_NO_UNKNOWN) or inline:
                self.error(
                    "answer-options",
                    f"a yesNoUnknown question uses options={YES_NO_UNKNOWN} and no inline options",
                    **where,
                )
            list_code = YES_NO_UNKNOWN
        elif answer_type == "codedChoice":
            if (list_code is None) == (not inline):
                self.error(
                    "answer-options",
                    "a codedChoice question has either an options attribute or inline "
                    "<option> elements, not both and not neither",
                    **where,
                )
            options = inline
        elif list_code is not None or inline:
            self.error("answer-options", f"a {answer_type} question has no options", **where)
            list_code = None
        from_list = list_code is not None and not options
        if from_list:
            option_list = self.option_lists.get(list_code or "")
            if option_list is None:
                self.error(
                    "unknown-option-list",
                    f"question {code} uses option list {list_code}, which no common file defines",
                    **where,
                )
            else:
                options = option_list.options
        return Question(
            code,
            answer_type,
            set_code,
            area,
            _texts(element.iterchildren(_NS + "text")),
            list_code if from_list else None,
            options,
            file,
        )


# --- lint ---------------------------------------------------------------------


@dataclass(frozen=True)
class LanguageCoverage:
    """Texts of one language: present out of expected, and their review status.

    A slot is a title, question text or option text (an option list's option
    counts once, however many questions use it) or a profession (present when
    it has at least one term in the language).
    """

    lang: str
    present: int
    expected: int
    reviewed: int
    needs_review: int

    @property
    def percent(self) -> float:
        return 100.0 * self.present / self.expected if self.expected else 100.0

    @property
    def complete(self) -> bool:
        return self.present == self.expected


@dataclass(frozen=True)
class LintReport:
    """What :func:`lint` found in one catalogue version."""

    version: str
    digest: str
    coverage: tuple[LanguageCoverage, ...]
    issues: tuple[Issue, ...]
    strict: bool
    xsd11_checked: bool

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity == "warning")

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors

    @property
    def full_coverage(self) -> bool:
        """Every slot has a text (or term) in every language."""
        return all(c.complete for c in self.coverage)


#: Issue kinds that ``strict`` turns from warnings into errors.
STRICT_KINDS = frozenset({"missing-text", "empty-text", "missing-term"})


@dataclass
class _Slot:
    code: str
    what: str
    texts: Texts
    file: str


def _slots(catalogue: Catalogue) -> list[_Slot]:
    slots = []
    for area in catalogue.areas.values():
        slots.append(_Slot(area.code, "area title", area.titles, area.file))
    for option_list in catalogue.option_lists.values():
        for option in option_list.options:
            slots.append(
                _Slot(f"{option_list.code}/{option.code}", "option", option.texts, option_list.file)
            )
    for qset in catalogue.question_sets.values():
        slots.append(_Slot(qset.code, "question set title", qset.titles, qset.file))
        for question in qset.questions:
            slots.append(_Slot(question.code, "question", question.texts, question.file))
            if question.option_list is None:
                for option in question.options:
                    slots.append(
                        _Slot(f"{question.code}/{option.code}", "option", option.texts, qset.file)
                    )
    return slots


def lint(catalogue: Catalogue, *, strict: bool = False, xsd11: bool = True) -> LintReport:
    """Check coverage and consistency of one catalogue version.

    Reports the loader's problems plus: missing and empty texts (warnings;
    errors with ``strict``; a missing or empty English source text is always
    an error), question sets with fewer than MIN_QUESTIONS_PER_SET questions,
    professions without a term in some language (warning; error with
    ``strict``), English texts not marked reviewed (warning), and, when
    ``xsd11`` and the xmlschema package is available, the XSD 1.1 assertions
    of catalogue.xsd.
    """
    issues = list(catalogue.problems)
    counts = {lang: [0, 0, 0] for lang in LANGUAGES}  # present, reviewed, needs-review
    expected = 0

    def promote(kind: str) -> Severity:
        return "error" if strict and kind in STRICT_KINDS else "warning"

    for slot in _slots(catalogue):
        expected += 1
        missing, empty = [], []
        for lang in LANGUAGES:
            text = slot.texts.get(lang)
            if text is None:
                missing.append(lang)
            elif not text.text:
                empty.append(lang)
            else:
                counts[lang][0] += 1
                counts[lang][1 if text.review == REVIEWED else 2] += 1
        english = slot.texts.get(SOURCE_LANGUAGE)
        if english is None or not english.text:
            issues.append(
                Issue(
                    "error",
                    "missing-english",
                    f"{slot.what} has no English source text",
                    code=slot.code,
                    file=slot.file,
                )
            )
        elif english.review != REVIEWED:
            issues.append(
                Issue(
                    "warning",
                    "english-not-reviewed",
                    f"the English source text of this {slot.what} is not marked reviewed",
                    code=slot.code,
                    file=slot.file,
                )
            )
        for kind, langs in (("missing-text", missing), ("empty-text", empty)):
            langs = [lang for lang in langs if lang != SOURCE_LANGUAGE]
            if langs:
                issues.append(
                    Issue(
                        promote(kind),
                        kind,
                        f"{slot.what} has {'no' if kind == 'missing-text' else 'an empty'} "
                        f"text in {len(langs)} language(s): {' '.join(langs)}",
                        code=slot.code,
                        file=slot.file,
                        langs=tuple(langs),
                    )
                )

    for prof in catalogue.profession_map.values():
        expected += 1
        missing = []
        for lang in LANGUAGES:
            if prof.terms.get(lang):
                counts[lang][0] += 1
                counts[lang][1 if prof.review.get(lang) == REVIEWED else 2] += 1
            else:
                missing.append(lang)
        if missing:
            issues.append(
                Issue(
                    promote("missing-term"),
                    "missing-term",
                    f"profession has no term in {len(missing)} language(s): {' '.join(missing)}",
                    code=prof.code,
                    file=prof.file,
                    langs=tuple(missing),
                )
            )

    for qset in catalogue.question_sets.values():
        if len(qset.questions) < MIN_QUESTIONS_PER_SET:
            issues.append(
                Issue(
                    "error",
                    "small-question-set",
                    f"question set has {len(qset.questions)} question(s); "
                    f"at least {MIN_QUESTIONS_PER_SET} are required",
                    code=qset.code,
                    file=qset.file,
                )
            )

    xsd11_checked = False
    if xsd11:
        xsd11_checked, found = _xsd11_issues(catalogue, issues)
        issues.extend(found)

    coverage = tuple(
        LanguageCoverage(lang, c[0], expected, c[1], c[2]) for lang, c in counts.items()
    )
    return LintReport(
        catalogue.version, catalogue.digest, coverage, tuple(issues), strict, xsd11_checked
    )


@functools.cache
def _xsd11_schema() -> Any:
    import xmlschema

    text = package_catalogue_root().joinpath("catalogue.xsd").read_text(encoding="utf-8")
    return xmlschema.XMLSchema11(text)


def _xsd11_issues(catalogue: Catalogue, known: Sequence[Issue]) -> tuple[bool, list[Issue]]:
    """Validate the catalogue's files with the XSD 1.1 assertions (xmlschema).

    Files the loader already refused are skipped, and an assertion failure on
    an element whose code already has an error is not reported twice.
    Returns (checked, issues); checked is False when xmlschema is missing.
    """
    try:
        schema = _xsd11_schema()
    except ImportError:
        return False, []
    refused = {i.file for i in known if i.kind in ("xml-invalid", "schema-invalid")}
    already = {i.code for i in known if i.severity == "error" and i.code}
    found = []
    for file in catalogue.files:
        if file.name in refused:
            continue
        root = parse_xml(file.data, _LIMITS)
        for error in schema.iter_errors(root):
            elem = getattr(error, "elem", None)
            code = elem.get("code", "") if elem is not None else ""
            if code in already:
                continue
            validator = getattr(error, "validator", None)
            annotation = getattr(validator, "annotation", None)
            reason = " ".join(str(annotation or error.reason or error).split())
            found.append(
                Issue(
                    "error",
                    "xsd11-assertion",
                    f"XSD 1.1: {reason}",
                    code=code,
                    file=file.name,
                    line=getattr(elem, "sourceline", None),
                )
            )
    return True, found
