"""``imi-gateway catalogue``: versions, list, show, lint, and the examples in docs/catalogue.md."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from gateway.cli import main
from gateway.core.catalogue import load_catalogues
from gateway.core.ns import LANGUAGES
from tests.core.test_catalogue import VERSION, make_version, question_xml, set_xml, sets_file

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "catalogue.md"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


# --- versions, list, show -------------------------------------------------------


def test_versions_prints_each_installed_version_with_digest_and_counts() -> None:
    status, out, _ = run("catalogue", "versions")
    catalogue = load_catalogues().get(VERSION)
    assert status == 0
    line = next(line for line in out.splitlines() if line.startswith(VERSION + " "))
    assert f"sha256:{catalogue.digest}" in line
    assert f"questions {len(catalogue.questions)}" in line
    assert f"areas {len(catalogue.areas)}" in line


def test_versions_and_dir_options_read_catalogues_outside_the_package(
    tmp_path: pathlib.Path,
) -> None:
    make_version(tmp_path, name="2099.1")
    make_version(tmp_path, {"x.xml": sets_file("PQD", set_xml("PQD-X"))}, name="2099.2")
    status, out, _ = run("catalogue", "versions", "--dir", str(tmp_path))
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()] == ["2099.1", "2099.2"]
    assert "question sets 2" in out.splitlines()[1]
    draft = make_version(tmp_path / "drafts", name="my-draft")
    status, out, _ = run("catalogue", "list", "--dir", str(draft), "--version", "2099.9")
    assert status == 0 and out.startswith("catalogue 2099.9  sha256:")


def test_list_shows_areas_and_sets_with_titles_in_the_chosen_language() -> None:
    status, out, _ = run("catalogue", "list", "--lang", "nn")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"catalogue {VERSION}  sha256:") and lines[0].endswith("language nn")
    assert "PQD  Yrkeskvalifikasjonar  (Directive 2005/36/EC)" in lines
    assert "  PQD-GENERAL  Generelle spørsmål om yrkeskvalifikasjonar  (14 questions)" in lines
    _, english, _ = run("catalogue", "list")
    assert "PQD  Professional qualifications  (Directive 2005/36/EC)" in english.splitlines()


def test_list_marks_texts_shown_in_english_for_want_of_a_translation(
    tmp_path: pathlib.Path,
) -> None:
    langs = [lang for lang in LANGUAGES if lang != "nn"]
    directory = make_version(tmp_path, {"f.xml": sets_file("PQD", set_xml("PQD-F", langs=langs))})
    status, out, _ = run("catalogue", "list", "--dir", str(directory), "--lang", "nn")
    assert status == 0
    assert "  PQD-F  Set PQD-F [en]  [en: no nn text]  (10 questions)" in out.splitlines()


def test_show_question_prints_text_review_status_and_list_options() -> None:
    status, out, _ = run("catalogue", "show", "PQD-GENERAL-010", "--lang", "fr")
    assert status == 0
    lines = out.splitlines()
    assert "PQD-GENERAL-010  question in PQD-GENERAL (area PQD)  file pqd.xml" in lines
    assert "answer type: codedChoice" in lines
    assert (
        "text [fr, needs-review]: Quelle sanction disciplinaire a, le cas échéant, "
        "été infligée au professionnel ?" in lines
    )
    assert "options (list SANCTION_TYPE):" in lines
    assert "  SUSPENSION   Suspension temporaire" in lines


def test_show_question_with_inline_options_and_english_review_status() -> None:
    status, out, _ = run("catalogue", "show", "PQD-GENERAL-003")
    assert status == 0
    lines = out.splitlines()
    assert any(line.startswith("text [en, reviewed]: Does the qualification") for line in lines)
    assert lines[-4:] == ["options:", "  FULL     Yes, fully", "  PARTIAL  Partly", "  NONE     No"]


def test_show_area_set_option_list_and_profession(tmp_path: pathlib.Path) -> None:
    terms = {lang: [f"midwife-{lang}"] for lang in LANGUAGES}
    terms["nb"] = ["jordmor", "jordmødre"]
    directory = make_version(
        tmp_path,
        {"mw.xml": sets_file("PQD", set_xml("PQD-MIDWIFE", profession="midwife", terms=terms))},
    )
    d = ("--dir", str(directory))
    _, area, _ = run("catalogue", "show", "PQD", *d, "--lang", "de")
    assert "title [de, needs-review]: Berufsqualifikationen" in area.splitlines()
    assert "  PQD-MIDWIFE  Set PQD-MIDWIFE [de]" in area.splitlines()
    _, qset, _ = run("catalogue", "show", "PQD-MIDWIFE", *d, "--lang", "nb")
    assert "profession: midwife (jordmor, jordmødre)" in qset.splitlines()
    assert "questions (10):" in qset.splitlines()
    assert "  PQD-MIDWIFE-001  [yesNoUnknown]  Question PQD-MIDWIFE-001? [nb]" in qset.splitlines()
    _, lst, _ = run("catalogue", "show", "REGISTRATION_STATUS", *d, "--lang", "sv")
    assert "  NOT_REGISTERED  Inte registrerad" in lst.splitlines()
    _, prof, _ = run("catalogue", "show", "midwife", *d, "--lang", "nb")
    assert prof.splitlines()[1:] == [
        "midwife  profession  file mw.xml",
        "terms [nb]: jordmor, jordmødre",
        "question sets: PQD-MIDWIFE",
    ]


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["show", "PQD-GENERAL-999"], "CATALOGUE_CODE_UNKNOWN"),
        (["list", "--version", "2025.1"], "CATALOGUE_VERSION_UNKNOWN"),
        (["show", "PQD", "--version", "2025.1"], "CATALOGUE_VERSION_UNKNOWN"),
        (["lint", "--version", "2025.1"], "CATALOGUE_VERSION_UNKNOWN"),
        (["list", "--lang", "xx"], "CATALOGUE_LANGUAGE_UNKNOWN"),
    ],
)
def test_unknown_code_version_or_language_exits_1_with_the_stable_code(
    argv: list[str], code: str
) -> None:
    status, out, err = run("catalogue", *argv)
    assert status == 1
    assert err.startswith(f"error: {code}: ")
    assert out == ""


def test_a_subcommand_is_required() -> None:
    with pytest.raises(SystemExit) as info:
        run("catalogue")
    assert info.value.code == 2


# --- lint -------------------------------------------------------------------------


def test_lint_prints_a_coverage_row_per_language_and_passes_on_the_installed_catalogue() -> None:
    status, out, _ = run("catalogue", "lint", "--version", VERSION, "--strict")
    assert status == 0, out
    lines = out.splitlines()
    header = lines.index("lang   present  expected  coverage  reviewed  needs-review")
    rows = lines[header + 1 : header + 1 + len(LANGUAGES)]
    assert [row.split()[0] for row in rows] == list(LANGUAGES)
    for row in rows:
        _, present, expected, percent, reviewed, needs = row.split()
        assert present == expected and percent == "100.0%"
        assert int(reviewed) + int(needs) == int(present)
    assert lines[-1].startswith("0 error(s)") and lines[-1].endswith("OK (strict)")


def test_lint_exits_1_when_there_are_errors(tmp_path: pathlib.Path) -> None:
    directory = make_version(tmp_path, {"s.xml": sets_file("PQD", set_xml("PQD-SMALL", 4))})
    status, out, _ = run("catalogue", "lint", "--dir", str(directory))
    assert status == 1
    assert (
        "error  small-question-set  PQD-SMALL  s.xml: question set has 4 question(s); "
        "at least 10 are required" in out.splitlines()
    )
    assert out.splitlines()[-1].endswith("FAILED")


def test_lint_fails_on_missing_texts_only_with_strict(tmp_path: pathlib.Path) -> None:
    langs = [lang for lang in LANGUAGES if lang != "mt"]
    directory = make_version(tmp_path, {"m.xml": sets_file("PQD", set_xml("PQD-M", langs=langs))})
    status, out, _ = run("catalogue", "lint", "--dir", str(directory), "--no-xsd11")
    assert status == 0
    assert (
        "warning  missing-text  PQD-M-001  m.xml: question has no text in 1 language(s): mt" in out
    )
    mt = re.search(r"^mt\s+(\d+)\s+(\d+)\s", out, re.M)
    assert mt and int(mt.group(2)) - int(mt.group(1)) == 11  # the title and ten questions
    assert "XSD 1.1 assertions not checked" in out
    status, out, _ = run("catalogue", "lint", "--dir", str(directory), "--strict")
    assert status == 1
    assert "error  missing-text  PQD-M-001" in out


def test_lint_reports_invalid_files_instead_of_stopping(tmp_path: pathlib.Path) -> None:
    bad = sets_file("PQD", set_xml("PQD-B", questions=[question_xml("PQD-B-001", "maybe")]))
    directory = make_version(tmp_path, {"b.xml": bad, "c.xml": "<oops"})
    status, out, _ = run("catalogue", "lint", "--dir", str(directory))
    assert status == 1
    assert "error  schema-invalid  b.xml:1: " in out
    assert "error  xml-invalid  c.xml: XML_MALFORMED: " in out
    # Commands that need a usable catalogue refuse it as a configuration error.
    status, out, err = run("catalogue", "list", "--dir", str(directory))
    assert status == 3 and out == ""
    assert err.startswith("error: CATALOGUE_INVALID: catalogue 2099.1 is invalid: ")


def test_catalogue_command_runs_through_the_module_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "catalogue", "show", "YES_NO_UNKNOWN", "--lang", "is"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "  UNKNOWN  Óþekkt" in result.stdout.splitlines()


# --- the examples in docs/catalogue.md ------------------------------------------------


def console_examples() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for every ``$`` line of a console block."""
    examples: list[tuple[str, list[str]]] = []
    in_block, indent = False, 0
    for raw in DOCS.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("```"):
            in_block, indent = line == "```console", len(raw) - len(raw.lstrip())
            continue
        if not in_block:
            continue
        if line.startswith("$ "):
            examples.append((line[2:], []))
        elif examples:
            examples[-1][1].append(raw[indent:].rstrip())
    return examples


def test_docs_have_console_examples_for_every_subcommand() -> None:
    commands = " ".join(command for command, _ in console_examples())
    for sub in ("versions", "list", "show", "lint"):
        assert f"imi-gateway catalogue {sub}" in commands


@pytest.mark.parametrize(
    ("command", "expected"), console_examples(), ids=[c for c, _ in console_examples()]
)
def test_docs_console_example_runs_and_prints_what_the_docs_show(
    command: str, expected: list[str]
) -> None:
    if command.startswith("imi-gateway "):
        status, out, err = run(*shlex.split(command)[1:])
        assert status == 0, err + out
    else:
        result = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, check=False, cwd=ROOT
        )
        assert result.returncode == 0, result.stderr
        out = result.stdout
    actual = [line.rstrip() for line in out.splitlines()]
    for line in expected:
        if "..." not in line:
            assert line in actual, f"{line!r} not printed by {command!r}"


def test_docs_digest_command_reproduces_the_catalogue_digest() -> None:
    command = next(c for c, _ in console_examples() if "sha256sum" in c)
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.split()[0] == load_catalogues().get(VERSION).digest


def test_docs_python_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert blocks
    for block in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(DOCS), "exec"), {})
        assert "PQD-GENERAL-001 Er det vedlagde vitnemålet ekte? False" in out.getvalue()
