"""Loading and validating the question catalogue's XML files.

A catalogue version is a directory ``schemas/catalogue/<VERSION>/``
(installed as ``gateway.schemas``) whose ``*.xml`` files each have one of
three roots (``common``, ``area``, ``questionSets``; see
``schemas/catalogue/catalogue.xsd`` and docs/catalogue.md).
:func:`load_catalogue_dir` loads one version from any directory,
:func:`load_catalogue_root` every version under a directory.

Loading checks, in this order: hardened parsing (``gateway.core.xmlparse``;
comments are allowed because these are trusted package files), the XSD 1.0
subset of catalogue.xsd (compiled once with lxml), then the rules that span
files (unique codes, option-list references, areas named by ``questionSets``,
answer types and their options, code prefixes). A problem of the first two
kinds, or any rule error, makes :func:`load_catalogue_dir` raise
``CATALOGUE_INVALID`` unless it is called with ``check=False`` (as lint does,
to report everything at once).

Sans-IO apart from reading the catalogue files themselves.
"""

from __future__ import annotations

import functools
import os
import pathlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from types import MappingProxyType
from typing import Any

from lxml import etree

from gateway.core.catalogue.model import (
    NEEDS_REVIEW,
    REVIEWED,
    YES_NO_UNKNOWN,
    Area,
    Catalogue,
    CatalogueFile,
    CatalogueInvalid,
    CatalogueRegistry,
    Issue,
    Option,
    OptionList,
    Profession,
    Question,
    QuestionSet,
    Text,
    Texts,
    _show,
    _version_key,
)
from gateway.core.docxml import sha256_hex
from gateway.core.errors import GatewayError
from gateway.core.ns import CATALOGUE_NS
from gateway.core.xmlparse import ParseLimits, parse_xml

#: A catalogue version: the year, a dot and a sequence number (``2026.1``).
VERSION_RE = re.compile(r"\A[0-9]{4}\.[0-9]{1,4}\Z")

_NS = "{" + CATALOGUE_NS + "}"
_XS = "{http://www.w3.org/2001/XMLSchema}"
_LIMITS = ParseLimits(max_bytes=8 * 1024 * 1024, max_depth=16, allow_comments=True)
_MAX_SCHEMA_ERRORS_PER_FILE = 20


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
        files.append(CatalogueFile(entry.name, sha256_hex(data), data))
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
