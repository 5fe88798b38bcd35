"""Lint of the question catalogue: language coverage, review status, and what to fix.

:func:`lint` reports, for one catalogue version, the loader's problems plus
missing and empty texts, professions without a term in a language, English
source texts not marked reviewed, question sets that are too small, and the
XSD 1.1 assertions of catalogue.xsd (checked with the xmlschema package when
it is installed). ``imi-gateway catalogue lint`` prints the report.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.core.catalogue.load import _LIMITS, package_catalogue_root
from gateway.core.catalogue.model import (
    MIN_QUESTIONS_PER_SET,
    REVIEWED,
    SOURCE_LANGUAGE,
    Catalogue,
    Issue,
    Severity,
    Texts,
)
from gateway.core.ns import LANGUAGES
from gateway.core.xmlparse import parse_xml


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
