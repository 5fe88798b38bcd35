"""The options of ``imi-gateway authorities`` that describe an authority: argument types, the shared add/update options and the entry parts built from them."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from gateway.core import directory as rules
from gateway.core.catalogue import Catalogue
from gateway.core.directory.document import Competence
from gateway.core.docxml import LocalizedText
from gateway.core.ns import LANGUAGES

# --- argument types -----------------------------------------------------------------


def name_arg(value: str) -> LocalizedText:
    lang, sep, text = value.partition(":")
    if not sep or not text.strip():
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected LANG:TEXT, e.g. nn:Helsedirektoratet"
        )
    return LocalizedText(text, lang.strip())


def languages_arg(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def version_arg(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a version number") from None
    if number < 0:
        raise argparse.ArgumentTypeError("a version number is not negative")
    return number


def count_arg(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 1 <= number <= 1000:
        raise argparse.ArgumentTypeError("between 1 and 1000")
    return number


# --- building entries from options ------------------------------------------------------


def build_competences(
    catalogue: Catalogue,
    areas: Sequence[str],
    question_sets: Sequence[str],
    professions: Sequence[str],
) -> tuple[Competence, ...]:
    """Competences from ``--area``, ``--question-set`` and ``--profession`` options.

    A question set goes to its legislation area; a profession to the area of
    its question sets (one of ``areas`` when it has sets in several). An area
    listed without question sets or professions means the whole area.
    Unknown codes: CATALOGUE_CODE_UNKNOWN.
    """
    grouped: dict[str, tuple[list[str], list[str]]] = {}
    for area in areas:
        grouped.setdefault(catalogue.area(area).code, ([], []))
    for code in question_sets:
        area = catalogue.question_set(code).area
        grouped.setdefault(area, ([], []))[0].append(code)
    for code in professions:
        catalogue.profession(code)
        candidates = sorted({s.area for s in catalogue.question_sets_for_profession(code)})
        preferred = [a for a in candidates if a in areas] or candidates
        if len(preferred) != 1:
            where = ", ".join(preferred) if preferred else "no legislation area"
            raise rules.AuthorityCompetenceInvalid(
                f"profession {code} belongs to {where}: name the area with --area"
            )
        grouped.setdefault(preferred[0], ([], []))[1].append(code)
    if not grouped:
        raise rules.AuthorityFieldInvalid(
            "give at least one --area, --question-set or --profession"
        )
    return tuple(
        Competence(area, tuple(sets), tuple(profs)) for area, (sets, profs) in grouped.items()
    )


def working_languages(values: Sequence[list[str]] | None) -> list[str] | None:
    if not values:
        return None
    return [lang for group in values for lang in group]


def authority_options(parser: argparse.ArgumentParser, *, update: bool) -> None:
    parser.add_argument(
        "--name",
        type=name_arg,
        action="append",
        required=not update,
        metavar="LANG:TEXT",
        help="the name in a language (repeat for each language, e.g. nn:Helsedirektoratet)",
    )
    parser.add_argument(
        "--address",
        action="append",
        metavar="LINE",
        help="an address line (repeat for up to 4 lines)"
        + (": replaces all lines" if update else ""),
    )
    parser.add_argument("--postal-code", metavar="CODE", help="the postal code")
    parser.add_argument(
        "--city", metavar="CITY", help="the city" + ("" if update else " (required)")
    )
    parser.add_argument("--region", metavar="NUTS", help="the NUTS region code, e.g. NO08, PT17")
    parser.add_argument(
        "--area",
        action="append",
        metavar="AREA",
        help="a legislation area the authority is competent for (e.g. PQD)",
    )
    parser.add_argument(
        "--question-set",
        action="append",
        metavar="CODE",
        help="narrow to a question set (e.g. PQD-DOCTOR); its area is implied",
    )
    parser.add_argument(
        "--profession",
        action="append",
        metavar="CODE",
        help="narrow to a profession (e.g. doctor); its area is implied",
    )
    parser.add_argument(
        "--language",
        type=languages_arg,
        action="append",
        metavar="LANG",
        help=(
            "a working language (repeat or separate with commas; of: "
            f"{' '.join(LANGUAGES)})" + ("" if update else "; default: the node's languages")
        ),
    )
