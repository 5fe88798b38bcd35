"""``imi-gateway catalogue``: list, show and lint the question catalogue.

Sub-commands:

* ``versions``: every installed version with its digest and counts;
* ``list``: areas and question sets with their titles in one language;
* ``show CODE``: an area, question set, question, option list or profession;
* ``lint``: language coverage per language and the problems to fix (exit 1
  when there are errors; ``--strict`` also fails on missing texts).

``--dir DIR`` points ``list``, ``show`` and ``lint`` at a version directory
outside the installed package (a catalogue being written).
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from gateway.core.catalogue import (
    Area,
    Catalogue,
    LintReport,
    LocalText,
    OptionList,
    Profession,
    Question,
    QuestionSet,
    check_language,
    lint,
    load_catalogue_dir,
    load_catalogue_root,
    load_catalogues,
    package_catalogue_root,
)
from gateway.core.ns import LANGUAGES


def _catalogue(args: argparse.Namespace, *, check: bool = True) -> Catalogue:
    if args.dir:
        return load_catalogue_dir(args.dir, args.catalogue_version, check=check)
    registry = (
        load_catalogues() if check else load_catalogue_root(package_catalogue_root(), check=False)
    )
    return registry.get(args.catalogue_version) if args.catalogue_version else registry.latest


def _label(text: LocalText) -> str:
    if text.fallback:
        return f"{text.text}  [{text.text_lang}: no {text.lang} text]"
    return text.text


def _header(catalogue: Catalogue, lang: str, out: TextIO) -> None:
    print(f"catalogue {catalogue.version}  sha256:{catalogue.digest}  language {lang}", file=out)


# --- versions -------------------------------------------------------------------


def _versions(args: argparse.Namespace) -> int:
    registry = load_catalogue_root(args.dir) if args.dir else load_catalogues()
    for catalogue in registry:
        c = catalogue.counts()
        print(
            f"{catalogue.version}  sha256:{catalogue.digest}  files {c['files']}  "
            f"areas {c['areas']}  question sets {c['question_sets']}  "
            f"questions {c['questions']}  option lists {c['option_lists']}  "
            f"professions {c['professions']}"
        )
    return 0


# --- list -----------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    lang = check_language(args.lang)
    catalogue = _catalogue(args)
    out = sys.stdout
    _header(catalogue, lang, out)
    for area in catalogue.areas.values():
        title = catalogue.text(area.code, lang)
        print(f"{area.code}  {_label(title)}  ({area.legislation})", file=out)
        for set_code in area.question_sets:
            qset = catalogue.question_sets[set_code]
            extra = f"; profession {qset.profession}" if qset.profession else ""
            title = catalogue.text(set_code, lang)
            print(
                f"  {set_code}  {_label(title)}  ({len(qset.questions)} questions{extra})", file=out
            )
    return 0


# --- show -----------------------------------------------------------------------


def _show_options(catalogue: Catalogue, question: Question, lang: str, out: TextIO) -> None:
    if not question.options:
        return
    source = f" (list {question.option_list})" if question.option_list else ""
    print(f"options{source}:", file=out)
    width = max(len(o.code) for o in question.options)
    for option in question.options:
        text = catalogue.text(question.code, lang, option=option.code)
        print(f"  {option.code:<{width}}  {_label(text)}", file=out)


def _show_text(text: LocalText, out: TextIO, what: str = "text") -> None:
    print(f"{what} [{text.text_lang}, {text.review}]: {_label(text)}", file=out)


def _show(args: argparse.Namespace) -> int:
    lang = check_language(args.lang)
    catalogue = _catalogue(args)
    out = sys.stdout
    entry = catalogue.lookup(args.code)
    _header(catalogue, lang, out)
    if isinstance(entry, Area):
        print(f"{entry.code}  area  ({entry.legislation})  file {entry.file}", file=out)
        _show_text(catalogue.text(entry.code, lang), out, "title")
        print("question sets:", file=out)
        for set_code in entry.question_sets:
            print(f"  {set_code}  {_label(catalogue.text(set_code, lang))}", file=out)
    elif isinstance(entry, QuestionSet):
        print(f"{entry.code}  question set of area {entry.area}  file {entry.file}", file=out)
        _show_text(catalogue.text(entry.code, lang), out, "title")
        if entry.profession:
            terms = catalogue.profession_map.get(entry.profession)
            names = ", ".join(terms.terms.get(lang, ())) if terms else ""
            print(f"profession: {entry.profession}" + (f" ({names})" if names else ""), file=out)
        print(f"questions ({len(entry.questions)}):", file=out)
        for question in entry.questions:
            text = catalogue.text(question.code, lang)
            print(f"  {question.code}  [{question.answer_type}]  {_label(text)}", file=out)
    elif isinstance(entry, Question):
        print(
            f"{entry.code}  question in {entry.question_set} (area {entry.area})  file {entry.file}",
            file=out,
        )
        print(f"answer type: {entry.answer_type}", file=out)
        _show_text(catalogue.text(entry.code, lang), out)
        _show_options(catalogue, entry, lang, out)
    elif isinstance(entry, OptionList):
        print(f"{entry.code}  option list  file {entry.file}", file=out)
        width = max(len(o.code) for o in entry.options)
        for option in entry.options:
            text = catalogue.text(entry.code, lang, option=option.code)
            print(f"  {option.code:<{width}}  {_label(text)}", file=out)
    elif isinstance(entry, Profession):
        print(f"{entry.code}  profession  file {entry.file}", file=out)
        print(f"terms [{lang}]: {', '.join(entry.terms.get(lang, ())) or '(none)'}", file=out)
        sets = catalogue.question_sets_for_profession(entry.code)
        print("question sets: " + (", ".join(s.code for s in sets) or "(none)"), file=out)
    return 0


# --- lint -----------------------------------------------------------------------


def print_report(report: LintReport, out: TextIO) -> None:
    """The lint report as text: coverage table, issues, verdict."""
    print(f"catalogue {report.version}  sha256:{report.digest}", file=out)
    print(
        f"{'lang':<5}{'present':>9}{'expected':>10}{'coverage':>10}{'reviewed':>10}{'needs-review':>14}",
        file=out,
    )
    for c in report.coverage:
        print(
            f"{c.lang:<5}{c.present:>9}{c.expected:>10}{c.percent:>9.1f}%{c.reviewed:>10}{c.needs_review:>14}",
            file=out,
        )
    for issue in report.issues:
        print(str(issue), file=out)
    xsd11 = "XSD 1.1 assertions " + ("checked" if report.xsd11_checked else "not checked")
    verdict = "OK" if report.ok else "FAILED"
    mode = " (strict)" if report.strict else ""
    print(
        f"{len(report.errors)} error(s), {len(report.warnings)} warning(s); {xsd11}; "
        f"full coverage: {'yes' if report.full_coverage else 'no'}; {verdict}{mode}",
        file=out,
    )


def _lint(args: argparse.Namespace) -> int:
    if args.dir:
        catalogues = [load_catalogue_dir(args.dir, args.catalogue_version, check=False)]
    else:
        registry = load_catalogue_root(package_catalogue_root(), check=False)
        catalogues = (
            [registry.get(args.catalogue_version)] if args.catalogue_version else list(registry)
        )
    failed = False
    for catalogue in catalogues:
        report = lint(catalogue, strict=args.strict, xsd11=not args.no_xsd11)
        print_report(report, sys.stdout)
        if not args.no_xsd11 and not report.xsd11_checked:
            print("note: install xmlschema to check the XSD 1.1 assertions", file=sys.stderr)
        failed = failed or not report.ok
    return 1 if failed else 0


# --- registration ---------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "catalogue",
        help="list, show and lint the question catalogue",
        description="The question catalogue: standard questions and coded answers in 27 languages.",
    )
    commands = parser.add_subparsers(dest="catalogue_command", metavar="SUBCOMMAND", required=True)

    def common(sub: argparse.ArgumentParser, *, lang: bool) -> None:
        sub.add_argument(
            "--version",
            dest="catalogue_version",
            metavar="V",
            help="catalogue version (default: the newest installed"
            + ("" if lang else "; lint: all")
            + ")",
        )
        sub.add_argument(
            "--dir",
            metavar="DIR",
            help="use this version directory instead of the installed catalogue",
        )
        if lang:
            sub.add_argument(
                "--lang",
                default="en",
                metavar="XX",
                help=f"language of the texts (default en; one of {' '.join(LANGUAGES)})",
            )

    versions = commands.add_parser("versions", help="installed versions, digests and counts")
    versions.add_argument(
        "--dir", metavar="DIR", help="a catalogue root holding version directories"
    )
    versions.set_defaults(func=_versions)

    list_ = commands.add_parser("list", help="areas and question sets with their titles")
    common(list_, lang=True)
    list_.set_defaults(func=_list)

    show = commands.add_parser(
        "show", help="an area, question set, question, option list or profession"
    )
    show.add_argument("code", metavar="CODE")
    common(show, lang=True)
    show.set_defaults(func=_show)

    lint_ = commands.add_parser(
        "lint",
        help="coverage per language and problems (exit 1 on errors)",
        description=(
            "Report text coverage and review status per language, and the problems in the "
            "catalogue files. Exits 1 when there are errors. Missing texts are warnings "
            "unless --strict; review status is reported, never failed."
        ),
    )
    common(lint_, lang=False)
    lint_.add_argument(
        "--strict", action="store_true", help="missing or empty texts and terms are errors"
    )
    lint_.add_argument("--no-xsd11", action="store_true", help="skip the XSD 1.1 assertion check")
    lint_.set_defaults(func=_lint)
