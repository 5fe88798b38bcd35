"""The question catalogue: loading, validation, look-ups, lint.

The catalogue holds the standard questions of every legislation area, their
coded answers and their texts in the 27 IMI languages. It is *data*: a
version is a directory ``schemas/catalogue/<VERSION>/`` (installed as
``gateway.schemas``) whose ``*.xml`` files each have one of three roots
(``common``, ``area``, ``questionSets``; see ``schemas/catalogue/catalogue.xsd``
and docs/catalogue.md). Adding a legislation area is adding a file.

This module is the catalogue's public API; import from it. It holds the
node's entry points, :func:`load_catalogues` (every installed version,
loaded and validated once and cached) and :func:`validate_codes`, and
re-exports the rest:

* :mod:`gateway.core.catalogue.model`: errors, constants and the data
  model; :class:`Catalogue` (look-ups by code, texts with the documented
  language fallback, professions and their multilingual terms, and
  :meth:`Catalogue.validate_codes`, which the node uses to refuse a document
  that names an unknown version, question set, question or option) and
  :class:`CatalogueRegistry`;
* :mod:`gateway.core.catalogue.load`: :func:`load_catalogue_dir` (one
  version from any directory), :func:`load_catalogue_root`, and the
  validation of the files;
* :mod:`gateway.core.catalogue.linting`: :func:`lint`, language coverage and
  review status per language, and the problems a data author must fix.

The checks the loader makes, and in which order, are described in
:mod:`gateway.core.catalogue.load`.

Sans-IO apart from reading the catalogue files themselves; nothing here
touches the network, a database or the clock.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

from gateway.core.catalogue.linting import (
    STRICT_KINDS,
    LanguageCoverage,
    LintReport,
    lint,
)
from gateway.core.catalogue.load import (
    VERSION_RE,
    load_catalogue_dir,
    load_catalogue_root,
    package_catalogue_root,
)
from gateway.core.catalogue.model import (
    ANSWER_TYPES,
    CODED_ANSWER_TYPES,
    MIN_QUESTIONS_PER_SET,
    NEEDS_REVIEW,
    REVIEWED,
    SOURCE_LANGUAGE,
    YES_NO_UNKNOWN,
    Area,
    Catalogue,
    CatalogueAnswerMismatch,
    CatalogueCodeUnknown,
    CatalogueFile,
    CatalogueInvalid,
    CatalogueLanguageUnknown,
    CatalogueRegistry,
    CatalogueVersionUnknown,
    Entry,
    Issue,
    LocalText,
    Option,
    OptionList,
    Profession,
    Question,
    QuestionSet,
    Severity,
    Text,
    Texts,
    catalogue_digest,
    check_language,
    pick_text,
)

__all__ = [
    "ANSWER_TYPES",
    "CODED_ANSWER_TYPES",
    "MIN_QUESTIONS_PER_SET",
    "NEEDS_REVIEW",
    "REVIEWED",
    "SOURCE_LANGUAGE",
    "STRICT_KINDS",
    "VERSION_RE",
    "YES_NO_UNKNOWN",
    "Area",
    "Catalogue",
    "CatalogueAnswerMismatch",
    "CatalogueCodeUnknown",
    "CatalogueFile",
    "CatalogueInvalid",
    "CatalogueLanguageUnknown",
    "CatalogueRegistry",
    "CatalogueVersionUnknown",
    "Entry",
    "Issue",
    "LanguageCoverage",
    "LintReport",
    "LocalText",
    "Option",
    "OptionList",
    "Profession",
    "Question",
    "QuestionSet",
    "Severity",
    "Text",
    "Texts",
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
