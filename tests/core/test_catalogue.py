"""The question catalogue: loading, validation, look-ups, digests and lint.

The builders at the top (``question_xml``, ``set_xml``, ``area_file``,
``sets_file``, ``make_version``) write small catalogue versions into
``tmp_path``; test_rendering and test_cli_catalogue reuse them.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import pathlib
import shutil
from collections.abc import Iterable, Sequence

import pytest
from lxml import etree

from gateway.core import catalogue as cat
from gateway.core.catalogue import (
    CatalogueAnswerMismatch,
    CatalogueCodeUnknown,
    CatalogueInvalid,
    CatalogueLanguageUnknown,
    CatalogueVersionUnknown,
    lint,
    load_catalogue_dir,
    load_catalogues,
)
from gateway.core.catalogue import linting as catalogue_lint
from gateway.core.errors import ConfigurationError, InvalidInput
from gateway.core.ns import CATALOGUE_NS, LANGUAGES

INSTALLED = pathlib.Path(str(importlib.resources.files("gateway.schemas"))) / "catalogue"
VERSION = "2026.1"
OWN_FILES = ("common.xml", "pqd.xml")  # the files this module vouches for in full

# --- builders -----------------------------------------------------------------


def texts_xml(tag: str, text: str, langs: Iterable[str] = LANGUAGES) -> str:
    """One ``tag`` element per language; English reviewed, the rest needs-review."""
    return "".join(
        f'<{tag} lang="{lang}" review="{"reviewed" if lang == "en" else "needs-review"}">'
        f"{text} [{lang}]</{tag}>"
        for lang in langs
    )


def question_xml(
    code: str,
    answer_type: str = "yesNoUnknown",
    options: str | None = "YES_NO_UNKNOWN",
    inline: Sequence[str] = (),
    langs: Iterable[str] = LANGUAGES,
) -> str:
    attrs = f'code="{code}" answerType="{answer_type}"'
    if options is not None:
        attrs += f' options="{options}"'
    langs = list(langs)
    body = texts_xml("text", f"Question {code}?", langs)
    for option in inline:
        body += f'<option code="{option}">{texts_xml("text", f"Option {option}", langs)}</option>'
    return f"<question {attrs}>{body}</question>"


def set_xml(
    code: str,
    n: int = 10,
    *,
    profession: str | None = None,
    terms: dict[str, list[str]] | None = None,
    langs: Iterable[str] = LANGUAGES,
    questions: Sequence[str] = (),
) -> str:
    langs = list(langs)
    attrs = f'code="{code}"' + (f' profession="{profession}"' if profession else "")
    body = texts_xml("title", f"Set {code}", langs)
    if profession:
        terms = terms if terms is not None else {lang: [f"{profession}-{lang}"] for lang in langs}
        body += f'<profession code="{profession}">'
        body += "".join(
            f'<term lang="{lang}">{term}</term>'
            for lang, values in terms.items()
            for term in values
        )
        body += "</profession>"
    body += "".join(questions) or "".join(
        question_xml(f"{code}-{i:03d}", langs=langs) for i in range(1, n + 1)
    )
    return f"<questionSet {attrs}>{body}</questionSet>"


def area_file(code: str, *sets: str, legislation: str = "Regulation (EU) 2099/1") -> str:
    return (
        f'<area xmlns="{CATALOGUE_NS}" code="{code}" legislation="{legislation}">'
        f"{texts_xml('title', f'Area {code}')}{''.join(sets)}</area>"
    )


def sets_file(area: str, *sets: str) -> str:
    return f'<questionSets xmlns="{CATALOGUE_NS}" area="{area}">{"".join(sets)}</questionSets>'


def make_version(
    tmp_path: pathlib.Path,
    files: dict[str, str] | None = None,
    *,
    name: str = "2099.1",
    base: Sequence[str] = OWN_FILES,
) -> pathlib.Path:
    """A version directory with the installed ``base`` files plus ``files``."""
    directory = tmp_path / name
    directory.mkdir(parents=True)
    for file in base:
        shutil.copyfile(INSTALLED / VERSION / file, directory / file)
    for file, content in (files or {}).items():
        (directory / file).write_text(content, encoding="utf-8")
    return directory


def kinds(issues: Iterable[cat.Issue], severity: str | None = None) -> set[str]:
    return {i.kind for i in issues if severity is None or i.severity == severity}


# --- the installed catalogue --------------------------------------------------


def test_installed_catalogue_loads_every_version_without_errors() -> None:
    registry = load_catalogues()
    assert VERSION in registry.versions
    for catalogue in registry:
        assert kinds(catalogue.problems, "error") == set()
        assert "PQD" in catalogue.areas
    assert registry.latest.version == registry.versions[-1]


def test_installed_catalogues_are_loaded_once_and_cached() -> None:
    assert load_catalogues() is load_catalogues()
    assert load_catalogues().get(VERSION) is load_catalogues().get(VERSION)


def test_whole_installed_catalogue_lints_clean_with_full_coverage_in_27_languages() -> None:
    # Lints every file present (other teams' question sets included), strictly.
    for catalogue in load_catalogues():
        report = lint(catalogue, strict=True)
        assert report.xsd11_checked
        assert [str(i) for i in report.errors] == []
        assert report.full_coverage, [c for c in report.coverage if not c.complete]
        assert [c.lang for c in report.coverage] == list(LANGUAGES)


def test_common_and_pqd_have_every_text_in_27_languages_english_reviewed_others_drafts() -> None:
    for name in OWN_FILES:
        root = etree.fromstring((INSTALLED / VERSION / name).read_bytes())
        holders = [el for el in root.iter() if el.find(f"{{{CATALOGUE_NS}}}text") is not None]
        holders += [el for el in root.iter() if el.find(f"{{{CATALOGUE_NS}}}title") is not None]
        assert holders
        for holder in holders:
            texts = [
                el
                for el in holder
                if etree.QName(el).localname in ("text", "title") and el.text and el.text.strip()
            ]
            assert sorted(t.get("lang") for t in texts) == sorted(LANGUAGES), holder.get("code")
            for text in texts:
                expected = "reviewed" if text.get("lang") == "en" else "needs-review"
                assert text.get("review") == expected


def test_pqd_general_set_has_realistic_questions_of_every_answer_type() -> None:
    catalogue = load_catalogues().get(VERSION)
    area = catalogue.area("PQD")
    assert area.legislation == "Directive 2005/36/EC"
    general = catalogue.question_set("PQD-GENERAL")
    assert general.area == "PQD" and general.profession is None
    assert len(general.questions) >= cat.MIN_QUESTIONS_PER_SET
    assert {q.answer_type for q in general.questions} == set(cat.ANSWER_TYPES)
    first = catalogue.question("PQD-GENERAL-001")
    assert catalogue.text(first.code, "en").text == "Is the attached diploma authentic?"
    assert [o.code for o in first.options] == ["YES", "NO", "UNKNOWN"]
    assert first.option_list == "YES_NO_UNKNOWN"
    inline = catalogue.question("PQD-GENERAL-003")
    assert inline.option_list is None and [o.code for o in inline.options] == [
        "FULL",
        "PARTIAL",
        "NONE",
    ]


def test_common_option_lists_are_the_documented_ones() -> None:
    catalogue = load_catalogues().get(VERSION)
    lists = {code: [o.code for o in lst.options] for code, lst in catalogue.option_lists.items()}
    assert lists["YES_NO_UNKNOWN"] == ["YES", "NO", "UNKNOWN"]
    assert lists["REGISTRATION_STATUS"] == ["REGISTERED", "NOT_REGISTERED", "SUSPENDED", "REMOVED"]
    assert lists["SANCTION_TYPE"] == [
        "NONE",
        "WARNING",
        "FINE",
        "RESTRICTION",
        "SUSPENSION",
        "PROHIBITION",
    ]
    docs = (pathlib.Path(__file__).parents[2] / "docs" / "catalogue.md").read_text()
    for code in lists:
        assert f"`{code}`" in docs


def test_xsd_language_enumeration_is_exactly_the_27_ns_languages() -> None:
    xsd = etree.parse(str(INSTALLED / "catalogue.xsd"))
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    values = xsd.xpath("//xs:simpleType[@name='Language']//xs:enumeration/@value", namespaces=ns)
    assert sorted(values) == sorted(LANGUAGES)


# --- look-ups and texts ---------------------------------------------------------


def test_text_in_requested_language_is_not_a_fallback() -> None:
    catalogue = load_catalogues().get(VERSION)
    text = catalogue.text("PQD-GENERAL-001", "nn")
    assert (text.text, text.text_lang, text.fallback) == (
        "Er det vedlagde vitnemålet ekte?",
        "nn",
        False,
    )
    assert text.review == "needs-review"
    assert catalogue.text("PQD", "de").text == "Berufsqualifikationen"
    assert catalogue.text("PQD-GENERAL-001", "de", option="UNKNOWN").text == "Unbekannt"
    assert catalogue.text("YES_NO_UNKNOWN", "ga", option="YES").text == "Tá"


def test_missing_translation_falls_back_to_english_marked_as_fallback(
    tmp_path: pathlib.Path,
) -> None:
    langs = [lang for lang in LANGUAGES if lang != "nn"]
    directory = make_version(tmp_path, {"x.xml": area_file("XA", set_xml("XA-ONE", langs=langs))})
    catalogue = load_catalogue_dir(directory)
    text = catalogue.text("XA-ONE-001", "nn")
    assert (text.text, text.lang, text.text_lang, text.fallback) == (
        "Question XA-ONE-001? [en]",
        "nn",
        "en",
        True,
    )
    assert catalogue.text("XA-ONE-001", "nb").fallback is False


def test_unknown_codes_and_languages_are_refused_with_stable_codes() -> None:
    catalogue = load_catalogues().get(VERSION)
    for call in (
        lambda: catalogue.question("PQD-GENERAL-999"),
        lambda: catalogue.question_set("NOPE"),
        lambda: catalogue.area("NOPE"),
        lambda: catalogue.option("PQD-GENERAL-001", "MAYBE"),
        lambda: catalogue.text("NOPE", "en"),
        lambda: catalogue.lookup("NOPE"),
    ):
        with pytest.raises(CatalogueCodeUnknown) as info:
            call()
        assert info.value.code == "CATALOGUE_CODE_UNKNOWN"
        assert isinstance(info.value, InvalidInput) and info.value.http_status == 400
    with pytest.raises(CatalogueLanguageUnknown) as lang_info:
        catalogue.text("PQD-GENERAL-001", "no")
    assert lang_info.value.code == "CATALOGUE_LANGUAGE_UNKNOWN"


def test_unknown_catalogue_version_is_refused_with_stable_code() -> None:
    with pytest.raises(CatalogueVersionUnknown) as info:
        load_catalogues().get("2025.9")
    assert info.value.code == "CATALOGUE_VERSION_UNKNOWN"
    assert "2026.1" in str(info.value)


def test_messages_about_hostile_codes_are_capped() -> None:
    with pytest.raises(CatalogueCodeUnknown) as info:
        load_catalogues().get(VERSION).question("X" * 10_000 + "\n")
    assert len(str(info.value)) < 200 and "\n" not in str(info.value)


# --- validate_codes (used by the node) ------------------------------------------


def test_validate_codes_accepts_a_document_using_known_codes() -> None:
    registry = load_catalogues()
    catalogue = registry.validate_codes(
        VERSION,
        "PQD-GENERAL",
        ["PQD-GENERAL-001", "PQD-GENERAL-007"],
        [("PQD-GENERAL-001", "NO"), ("PQD-GENERAL-007", "SUSPENDED")],
    )
    assert catalogue.version == VERSION
    registry.validate_codes(VERSION, None, ["PQD-GENERAL-003"], {"PQD-GENERAL-003": "PARTIAL"})
    assert cat.validate_codes(VERSION, "PQD-GENERAL", ["PQD-GENERAL-014"]) is catalogue


@pytest.mark.parametrize(
    ("version", "qset", "questions", "options", "error"),
    [
        ("2026.2", "PQD-GENERAL", ["PQD-GENERAL-001"], [], CatalogueVersionUnknown),
        (VERSION, "PQD-NOPE", ["PQD-GENERAL-001"], [], CatalogueCodeUnknown),
        (VERSION, "PQD-GENERAL", ["PQD-GENERAL-099"], [], CatalogueCodeUnknown),
        (VERSION, "PQD-GENERAL", [], [("PQD-GENERAL-001", "MAYBE")], CatalogueCodeUnknown),
        (VERSION, "PQD-GENERAL", [], [("PQD-GENERAL-007", "YES")], CatalogueCodeUnknown),
        (VERSION, "PQD-GENERAL", [], [("PQD-GENERAL-006", "YES")], CatalogueAnswerMismatch),
    ],
)
def test_validate_codes_refuses_unknown_version_set_question_or_option(
    version: str,
    qset: str,
    questions: list[str],
    options: list[tuple[str, str]],
    error: type[InvalidInput],
) -> None:
    with pytest.raises(error) as info:
        load_catalogues().validate_codes(version, qset, questions, options)
    assert info.value.code == error.code


def test_validate_codes_refuses_a_question_of_another_set(tmp_path: pathlib.Path) -> None:
    directory = make_version(tmp_path, {"x.xml": sets_file("PQD", set_xml("PQD-OTHER"))})
    catalogue = load_catalogue_dir(directory)
    catalogue.validate_codes(None, ["PQD-OTHER-001", "PQD-GENERAL-001"])
    with pytest.raises(CatalogueCodeUnknown, match="not in question set PQD-GENERAL"):
        catalogue.validate_codes("PQD-GENERAL", ["PQD-OTHER-001"])


# --- areas are data ------------------------------------------------------------


def test_a_new_legislation_area_is_added_by_dropping_a_data_file(tmp_path: pathlib.Path) -> None:
    new_area = area_file(
        "XB",
        set_xml("XB-GENERAL", 12),
        legislation="Regulation (EU) 2099/42",
    )
    directory = make_version(tmp_path, {"xb.xml": new_area})
    catalogue = load_catalogue_dir(directory)
    assert set(catalogue.areas) == {"PQD", "XB"}
    assert catalogue.area("XB").legislation == "Regulation (EU) 2099/42"
    assert catalogue.area("XB").question_sets == ("XB-GENERAL",)
    assert catalogue.question("XB-GENERAL-012").area == "XB"
    assert catalogue.text("XB", "fi").text == "Area XB [fi]"
    catalogue.validate_codes("XB-GENERAL", ["XB-GENERAL-001"], [("XB-GENERAL-001", "YES")])
    report = lint(catalogue, strict=True)
    assert report.ok and report.full_coverage
    # A questionSets file may add sets to the new area, in any file order.
    more = make_version(
        tmp_path / "more",
        {"a-sets.xml": sets_file("XB", set_xml("XB-EXTRA")), "z-area.xml": new_area},
    )
    assert load_catalogue_dir(more).area("XB").question_sets == ("XB-EXTRA", "XB-GENERAL")


def test_content_does_not_depend_on_file_names_or_order(tmp_path: pathlib.Path) -> None:
    one = make_version(tmp_path / "a", {"a.xml": sets_file("PQD", set_xml("PQD-ONE"))})
    two = make_version(tmp_path / "b", {"zz.xml": sets_file("PQD", set_xml("PQD-ONE"))})
    first, second = load_catalogue_dir(one), load_catalogue_dir(two)
    assert list(first.question_sets) == list(second.question_sets)
    assert list(first.questions) == list(second.questions)
    assert first.question_sets["PQD-ONE"].titles == second.question_sets["PQD-ONE"].titles


def test_load_catalogue_dir_takes_an_explicit_version(tmp_path: pathlib.Path) -> None:
    directory = make_version(tmp_path, name="work-in-progress")
    with pytest.raises(CatalogueInvalid, match=r"YYYY\.N"):
        load_catalogue_dir(directory)
    assert load_catalogue_dir(directory, "2099.7").version == "2099.7"
    assert load_catalogue_dir(str(directory), "2099.7").version == "2099.7"


def test_load_catalogue_root_loads_every_version_directory(tmp_path: pathlib.Path) -> None:
    make_version(tmp_path, name="2099.1")
    make_version(tmp_path, name="2099.10")
    make_version(tmp_path, name="2099.2")
    (tmp_path / "__pycache__").mkdir()
    registry = cat.load_catalogue_root(tmp_path)
    assert registry.versions == ("2099.1", "2099.2", "2099.10")
    assert registry.latest.version == "2099.10"
    assert len(registry) == 3 and "2099.2" in registry


def test_an_empty_or_missing_directory_is_a_configuration_error(tmp_path: pathlib.Path) -> None:
    (tmp_path / "2099.1").mkdir()
    with pytest.raises(CatalogueInvalid) as info:
        load_catalogue_dir(tmp_path / "2099.1")
    assert isinstance(info.value, ConfigurationError) and info.value.code == "CATALOGUE_INVALID"
    with pytest.raises(CatalogueInvalid):
        load_catalogue_dir(tmp_path / "2099.2")


# --- digests ---------------------------------------------------------------------


def test_digest_is_sha256_of_the_sorted_sha256sum_listing(tmp_path: pathlib.Path) -> None:
    directory = make_version(tmp_path, {"b.xml": sets_file("PQD", set_xml("PQD-B"))})
    listing = "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
        for p in sorted(directory.glob("*.xml"))
    )
    expected = hashlib.sha256(listing.encode()).hexdigest()
    assert load_catalogue_dir(directory).digest == expected
    assert cat.catalogue_digest(reversed([(p.name, p.read_bytes()) for p in directory.iterdir()]))


def test_digest_is_stable_and_changes_when_a_text_changes(tmp_path: pathlib.Path) -> None:
    one = make_version(tmp_path / "one")
    two = make_version(tmp_path / "two")
    assert load_catalogue_dir(one).digest == load_catalogue_dir(two).digest
    assert load_catalogue_dir(one).digest == load_catalogue_dir(one).digest
    pqd = two / "pqd.xml"
    original = "Er det vedlagde vitnemålet ekte?"
    pqd.write_text(pqd.read_text().replace(original, "Er vitnemålet ekte?"))
    changed = load_catalogue_dir(two)
    assert changed.digest != load_catalogue_dir(one).digest
    assert changed.text("PQD-GENERAL-001", "nn").text == "Er vitnemålet ekte?"


def test_digest_ignores_files_that_are_not_catalogue_files(tmp_path: pathlib.Path) -> None:
    directory = make_version(tmp_path)
    before = load_catalogue_dir(directory).digest
    (directory / "README.txt").write_text("notes")
    (directory / ".pqd.xml.swp").write_text("editor")
    (directory / "__init__.py").write_text("")
    assert load_catalogue_dir(directory).digest == before


# --- professions ------------------------------------------------------------------


def test_professions_terms_and_sets_by_profession(tmp_path: pathlib.Path) -> None:
    terms = {lang: [f"doc-{lang}"] for lang in LANGUAGES}
    terms["de"] = ["Arzt", "Ärztin"]
    terms["en"] = ["doctor", "physician", "medical practitioner"]
    # The second set names the profession by attribute only (it is defined once).
    second = set_xml("PQD-DOCSPEC").replace(
        'code="PQD-DOCSPEC"', 'code="PQD-DOCSPEC" profession="doctor"', 1
    )
    files = {
        "doctor.xml": sets_file(
            "PQD", set_xml("PQD-DOCTOR", profession="doctor", terms=terms), second
        )
    }
    catalogue = load_catalogue_dir(make_version(tmp_path, files))
    professions = catalogue.professions()
    assert professions["doctor"]["de"] == ["Arzt", "Ärztin"]
    assert professions["doctor"]["en"] == ["doctor", "physician", "medical practitioner"]
    assert [s.code for s in catalogue.question_sets_for_profession("doctor")] == [
        "PQD-DOCSPEC",
        "PQD-DOCTOR",
    ]
    assert catalogue.question_sets_by_profession() == {"doctor": ["PQD-DOCSPEC", "PQD-DOCTOR"]}
    assert catalogue.find_professions("arztin") == ["doctor"]
    assert catalogue.find_professions("PHYSICIAN", lang="en") == ["doctor"]
    assert catalogue.find_professions("physician", lang="de") == []
    assert catalogue.find_professions("  ") == []


# --- problems: loader and lint ------------------------------------------------------


def test_duplicate_codes_across_files_are_refused_and_reported(tmp_path: pathlib.Path) -> None:
    files = {
        "a.xml": sets_file("PQD", set_xml("PQD-DUP")),
        "b.xml": sets_file("PQD", set_xml("PQD-DUP")),
        "c.xml": sets_file("PQD", set_xml("PQD-C", questions=[question_xml("PQD-GENERAL-001")])),
    }
    directory = make_version(tmp_path, files)
    with pytest.raises(CatalogueInvalid, match="duplicate-code"):
        load_catalogue_dir(directory)
    catalogue = load_catalogue_dir(directory, check=False)
    duplicates = [i for i in lint(catalogue).issues if i.kind == "duplicate-code"]
    assert {(i.code, i.file) for i in duplicates} == {
        ("PQD-DUP", "b.xml"),
        ("PQD-GENERAL-001", "pqd.xml"),
    }
    # The first definition, in file-name order, is the one kept (c.xml < pqd.xml).
    assert catalogue.question_set("PQD-DUP").file == "a.xml"
    assert catalogue.question("PQD-GENERAL-001").question_set == "PQD-C"


def test_unknown_option_list_and_area_references_are_errors(tmp_path: pathlib.Path) -> None:
    files = {
        "a.xml": sets_file(
            "PQD",
            set_xml(
                "PQD-REF",
                questions=[
                    question_xml("PQD-REF-001", "codedChoice", "NO_SUCH_LIST"),
                    *[question_xml(f"PQD-REF-{i:03d}") for i in range(2, 11)],
                ],
            ),
        ),
        "b.xml": sets_file("NOAREA", set_xml("NOAREA-SET")),
    }
    directory = make_version(tmp_path, files)
    with pytest.raises(CatalogueInvalid):
        load_catalogue_dir(directory)
    issues = lint(load_catalogue_dir(directory, check=False)).issues
    found = {(i.kind, i.code) for i in issues if i.severity == "error"}
    assert ("unknown-option-list", "PQD-REF-001") in found
    assert ("unknown-area", "NOAREA-SET") in found


ANSWER_RULE_CASES = {
    "date-with-list": question_xml("PQD-R-001", "date", "YES_NO_UNKNOWN"),
    "freetext-with-inline": question_xml("PQD-R-001", "freeText", None, inline=["A"]),
    "choice-without-options": question_xml("PQD-R-001", "codedChoice", None),
    "choice-with-both": question_xml("PQD-R-001", "codedChoice", "SANCTION_TYPE", inline=["A"]),
    "yesno-with-other-list": question_xml("PQD-R-001", "yesNoUnknown", "SANCTION_TYPE"),
    "yesno-with-inline": question_xml("PQD-R-001", "yesNoUnknown", None, inline=["Y"]),
}


@pytest.mark.parametrize("case", sorted(ANSWER_RULE_CASES))
def test_options_that_do_not_fit_the_answer_type_are_refused_by_loader_and_xsd11(
    tmp_path: pathlib.Path, case: str
) -> None:
    questions = [ANSWER_RULE_CASES[case], *[question_xml(f"PQD-R-{i:03d}") for i in range(2, 11)]]
    directory = make_version(
        tmp_path, {"r.xml": sets_file("PQD", set_xml("PQD-R", questions=questions))}
    )
    catalogue = load_catalogue_dir(directory, check=False)
    assert {(i.kind, i.code) for i in catalogue.problems} == {("answer-options", "PQD-R-001")}
    with pytest.raises(CatalogueInvalid, match="answer-options"):
        load_catalogue_dir(directory)
    # The XSD 1.1 assertions state the same rule for other tools.
    ok, found = catalogue_lint._xsd11_issues(catalogue, known=())
    assert ok and [(i.kind, i.code, i.line) for i in found] == [("xsd11-assertion", "PQD-R-001", 1)]


def test_yes_no_unknown_question_may_leave_its_option_list_implicit(tmp_path: pathlib.Path) -> None:
    questions = [question_xml(f"PQD-I-{i:03d}", options=None) for i in range(1, 11)]
    directory = make_version(
        tmp_path, {"i.xml": sets_file("PQD", set_xml("PQD-I", questions=questions))}
    )
    question = load_catalogue_dir(directory).question("PQD-I-001")
    assert question.option_list == "YES_NO_UNKNOWN"
    assert [o.code for o in question.options] == ["YES", "NO", "UNKNOWN"]


def test_question_code_must_start_with_its_set_code(tmp_path: pathlib.Path) -> None:
    questions = [
        question_xml("PQD-ELSE-001"),
        *[question_xml(f"PQD-P-{i:03d}") for i in range(2, 11)],
    ]
    directory = make_version(
        tmp_path, {"p.xml": sets_file("PQD", set_xml("PQD-P", questions=questions))}
    )
    catalogue = load_catalogue_dir(directory, check=False)
    assert kinds(catalogue.problems, "error") == {"question-code-prefix"}
    ok, found = catalogue_lint._xsd11_issues(catalogue, known=())
    assert ok and [i.code for i in found] == ["PQD-P"]


def test_set_code_outside_its_area_prefix_is_only_a_warning(tmp_path: pathlib.Path) -> None:
    directory = make_version(tmp_path, {"s.xml": sets_file("PQD", set_xml("OTHER-SET"))})
    catalogue = load_catalogue_dir(directory)
    assert kinds(catalogue.problems) == {"set-code-prefix"}
    assert lint(catalogue, strict=True).ok


def test_profession_attribute_and_element_must_agree(tmp_path: pathlib.Path) -> None:
    qset = set_xml("PQD-NURSE", profession="nurse").replace(
        'profession="nurse"', 'profession="midwife"', 1
    )
    directory = make_version(tmp_path, {"n.xml": sets_file("PQD", qset)})
    found = kinds(load_catalogue_dir(directory, check=False).problems, "error")
    assert found == {"profession-mismatch", "unknown-profession"}


def test_small_question_set_is_a_lint_error_but_loads(tmp_path: pathlib.Path) -> None:
    directory = make_version(tmp_path, {"s.xml": sets_file("PQD", set_xml("PQD-SMALL", 9))})
    catalogue = load_catalogue_dir(directory)
    report = lint(catalogue)
    assert [(i.kind, i.code) for i in report.errors] == [("small-question-set", "PQD-SMALL")]
    assert not report.ok


def test_missing_texts_are_warnings_errors_when_strict_and_counted_per_language(
    tmp_path: pathlib.Path,
) -> None:
    langs = [lang for lang in LANGUAGES if lang not in ("ga", "mt")]
    directory = make_version(tmp_path, {"m.xml": sets_file("PQD", set_xml("PQD-M", langs=langs))})
    catalogue = load_catalogue_dir(directory)
    report = lint(catalogue)
    assert report.ok and not report.full_coverage
    missing = [i for i in report.issues if i.kind == "missing-text"]
    assert len(missing) == 11  # the title and ten questions
    assert {i.langs for i in missing} == {("ga", "mt")}
    assert {i.severity for i in missing} == {"warning"}
    coverage = {c.lang: c for c in report.coverage}
    assert coverage["ga"].expected - coverage["ga"].present == 11
    assert coverage["de"].complete and coverage["de"].percent == 100.0
    assert coverage["en"].reviewed == coverage["en"].present
    assert coverage["de"].needs_review == coverage["de"].present
    strict = lint(catalogue, strict=True)
    assert not strict.ok and {i.kind for i in strict.errors} == {"missing-text"}


def test_empty_and_missing_english_texts_are_reported(tmp_path: pathlib.Path) -> None:
    qset = set_xml("PQD-E").replace("Question PQD-E-001? [de]", "  ", 1)
    qset = qset.replace('<text lang="en" review="reviewed">Question PQD-E-002? [en]</text>', "", 1)
    qset = qset.replace(
        'lang="en" review="reviewed">Question PQD-E-003', 'lang="en">Question PQD-E-003', 1
    )
    directory = make_version(tmp_path, {"e.xml": sets_file("PQD", qset)})
    report = lint(load_catalogue_dir(directory))
    found = {(i.kind, i.code, i.severity) for i in report.issues}
    assert ("empty-text", "PQD-E-001", "warning") in found
    assert ("missing-english", "PQD-E-002", "error") in found
    assert ("english-not-reviewed", "PQD-E-003", "warning") in found
    assert load_catalogue_dir(directory).text("PQD-E-001", "de").fallback is True


def test_profession_without_a_term_in_some_language_is_reported(tmp_path: pathlib.Path) -> None:
    terms = {lang: [f"vet-{lang}"] for lang in LANGUAGES if lang != "is"}
    directory = make_version(
        tmp_path, {"v.xml": sets_file("PQD", set_xml("PQD-VET", profession="vet", terms=terms))}
    )
    report = lint(load_catalogue_dir(directory))
    terms_issues = [i for i in report.issues if i.kind == "missing-term"]
    assert [(i.code, i.langs, i.severity) for i in terms_issues] == [("vet", ("is",), "warning")]
    assert not lint(load_catalogue_dir(directory), strict=True).ok


def test_schema_invalid_and_malformed_files_are_reported_with_lines(tmp_path: pathlib.Path) -> None:
    bad_lang = sets_file("PQD", set_xml("PQD-L")).replace('lang="sv"', 'lang="se"', 1)
    files = {
        "bad-lang.xml": bad_lang,
        "broken.xml": "<questionSets",
        "doctype.xml": '<!DOCTYPE x [<!ENTITY e "boom">]><questionSets/>',
        "wrong-root.xml": f'<questionSet xmlns="{CATALOGUE_NS}" code="X"/>',
    }
    directory = make_version(tmp_path, files)
    with pytest.raises(CatalogueInvalid, match=r"schema-invalid|xml-invalid"):
        load_catalogue_dir(directory)
    report = lint(load_catalogue_dir(directory, check=False))
    by_file = {i.file: i for i in report.errors}
    bad = [i for i in report.errors if i.file == "bad-lang.xml"]
    assert [(i.kind, i.line) for i in bad] == [("schema-invalid", 1)]
    assert "The value 'se' is not an element of the set" in bad[0].message
    assert by_file["broken.xml"].kind == "xml-invalid"
    assert "XML_FORBIDDEN_CONSTRUCT" in by_file["doctype.xml"].message
    assert by_file["wrong-root.xml"].kind == "schema-invalid"


def test_lint_works_without_the_xsd11_processor(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing() -> None:
        raise ImportError("xmlschema")

    monkeypatch.setattr(catalogue_lint, "_xsd11_schema", missing)
    directory = make_version(tmp_path, {"s.xml": sets_file("PQD", set_xml("PQD-SMALL", 3))})
    report = lint(load_catalogue_dir(directory))
    assert report.xsd11_checked is False
    assert kinds(report.errors) == {"small-question-set"}
    assert lint(load_catalogue_dir(directory), xsd11=False).xsd11_checked is False
