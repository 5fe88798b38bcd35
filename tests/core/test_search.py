"""gateway.core.search: multilingual matching through the catalogue, folding, filters, ranking.

The main proof: for each of the eleven PQD professions and each of the 27
languages, every term the catalogue gives for that profession in that
language finds the authority competent for it first, among authorities
competent for the other professions.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import pytest

from gateway.benchmarks import search as bench
from gateway.core.catalogue import Catalogue, CatalogueLanguageUnknown, load_catalogues
from gateway.core.directory.document import Address, AuthorityEntry, Competence
from gateway.core.docxml import LocalizedText
from gateway.core.ns import LANGUAGES
from gateway.core.search import (
    MatchKind,
    SearchIndex,
    SearchQuery,
    SearchQueryInvalid,
    fold,
    tokenize,
)

PROFESSIONS = (
    "doctor",
    "nurse",
    "dentist",
    "midwife",
    "pharmacist",
    "veterinary-surgeon",
    "architect",
    "accountant",
    "radiographer",
    "physiotherapist",
    "secondary-school-teacher",
)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogues().latest


def authority(
    authority_id: str,
    *names: tuple[str, str],
    professions: tuple[str, ...] = (),
    question_sets: tuple[str, ...] = (),
    area: str = "PQD",
    city: str = "Oslo",
    region: str | None = None,
    languages: tuple[str, ...] = ("en",),
) -> AuthorityEntry:
    return AuthorityEntry(
        authority_id=authority_id,
        names=tuple(LocalizedText(text, lang) for lang, text in names),
        address=Address(("Street 1",), city, authority_id[:2]),
        region=region,
        competences=(Competence(area, question_sets, professions),),
        working_languages=languages,
        certificates=(),
    )


# Neutral names (no word of any profession term in any language) so that only
# the competences decide.
def neutral_id(index: int) -> str:
    return f"FI-UNIT-{'ABCDEFGHIJKLM'[index]}"


@pytest.fixture(scope="module")
def by_profession(catalogue: Catalogue) -> SearchIndex:
    index = SearchIndex(catalogue)
    for i, code in enumerate(PROFESSIONS):
        letter = "ABCDEFGHIJKLM"[i]
        index.add(
            authority(neutral_id(i), ("en", f"Unit {letter}{letter}{letter}"), professions=(code,))
        )
    # competent for the whole area: found for every profession, but below the specific ones
    index.add(authority("FI-COORD", ("en", "Unit coordination"), professions=()))
    return index


# --- the 27 x 11 matrix ----------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("profession", PROFESSIONS)
def test_every_term_of_every_profession_in_every_language_finds_its_authority_first(
    catalogue: Catalogue, by_profession: SearchIndex, profession: str, lang: str
) -> None:
    professions = catalogue.professions()
    assert profession in professions, f"the catalogue has no profession {profession}"
    terms = professions[profession].get(lang, [])
    assert terms, f"the catalogue has no {lang} term for {profession}"
    expected = neutral_id(PROFESSIONS.index(profession))
    for term in terms:
        # A term written identically for two professions cannot tell them apart.
        shared = {
            code
            for code, by_lang in professions.items()
            if code != profession
            and any(fold(t) == fold(term) for ts in by_lang.values() for t in ts)
        }
        result = by_profession.search(SearchQuery(term, lang=lang))
        assert result.hits, f"{term!r} ({lang}) found nothing"
        top = [h for h in result.hits if h.score == result.hits[0].score]
        if shared:
            assert expected in [h.authority_id for h in top], (term, lang, shared)
        else:
            assert result.hits[0].authority_id == expected, (term, lang, result.ids)
            assert profession in result.hits[0].professions
        coordinator = result.ids.index("FI-COORD")
        assert coordinator > result.ids.index(expected)


def test_the_issue_examples_all_find_the_doctors_authority(by_profession: SearchIndex) -> None:
    doctors = neutral_id(PROFESSIONS.index("doctor"))
    for word in ("lege", "médico", "Arzt", "doctor"):
        assert by_profession.search(SearchQuery(word)).ids[0] == doctors, word


def test_question_sets_make_an_authority_competent_for_their_profession(
    catalogue: Catalogue,
) -> None:
    index = SearchIndex(catalogue)
    index.add(authority("PT-OMD", ("pt", "Ordem"), question_sets=("PQD-DOCTOR",)))
    index.add(authority("PT-OA", ("pt", "Ordem"), question_sets=("PQD-ARCHITECT",)))
    assert index.search(SearchQuery("médico")).ids == ["PT-OMD"]


# --- folding ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Médico", "medico"),
        ("ÄRZTIN", "arztin"),
        ("Straße", "strasse"),
        ("Ørsta", "orsta"),
        ("Ærø", "aero"),
        ("Œuvre", "oeuvre"),
        ("Đakovo", "dakovo"),
        ("Łódź", "lodz"),
        ("Þórshöfn", "thorshofn"),
        ("Garðabær", "gardabaer"),
        ("Ħamrun", "hamrun"),
        ("ΙΑΤΡΌΣ", "ιατροσ"),
        ("Лекар", "лекар"),
        ("Ingénieur ﬁnancier", "ingenieur financier"),
    ],
)
def test_folding_ignores_case_accents_and_special_letters(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_tokens_split_on_hyphens_apostrophes_and_punctuation() -> None:
    assert tokenize("Medizinisch-technische Radiologieassistentin") == [
        "medizinisch",
        "technische",
        "radiologieassistentin",
    ]
    assert tokenize("l'Ordre des Médecins (Paris)") == ["l", "ordre", "des", "medecins", "paris"]
    assert tokenize("  ") == []


@pytest.fixture
def places(catalogue: Catalogue) -> SearchIndex:
    index = SearchIndex(catalogue)
    index.add(
        authority(
            "NO-ORSTA",
            ("nn", "Sjukepleiarforbundet Ørsta"),
            professions=("nurse",),
            city="Ørsta",
            region="NO0A",
            languages=("nn",),
        )
    )
    index.add(
        authority(
            "PL-OIL",
            ("pl", "Okręgowa Izba Lekarska w Łodzi"),
            professions=("doctor",),
            city="Łódź",
            region="PL71",
            languages=("pl",),
        )
    )
    index.add(
        authority(
            "IS-LAEKNA",
            ("is", "Læknafélag Þórshafnar"),
            professions=("doctor",),
            city="Þórshöfn",
            region="IS00",
            languages=("is",),
        )
    )
    index.add(
        authority(
            "DE-BAEK",
            ("de", "Bundesärztekammer Straße"),
            professions=("doctor",),
            city="Berlin",
            region="DE3",
            languages=("de",),
        )
    )
    return index


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ØRSTA", "NO-ORSTA"),
        ("orsta", "NO-ORSTA"),
        ("LODZI", "PL-OIL"),
        ("łodzi", "PL-OIL"),
        ("okregowa", "PL-OIL"),
        ("thorshafnar", "IS-LAEKNA"),
        ("LÆKNAFÉLAG", "IS-LAEKNA"),
        ("laeknafelag", "IS-LAEKNA"),
        ("bundesarztekammer", "DE-BAEK"),
        ("STRASSE", "DE-BAEK"),
        ("straße", "DE-BAEK"),
    ],
)
def test_names_match_regardless_of_case_diacritics_and_special_letters(
    places: SearchIndex, query: str, expected: str
) -> None:
    assert places.search(SearchQuery(query)).ids == [expected]


def test_prefixes_match_names_and_profession_terms(places: SearchIndex) -> None:
    assert places.search(SearchQuery("sjukeplei")).ids == ["NO-ORSTA"]
    assert places.search(SearchQuery("bundesä")).ids == ["DE-BAEK"]
    # "méd" is a prefix of médico, médecin, Medizinerin...: the doctors' authorities
    # (and nurses', as in "medicinska sestra")
    found = places.search(SearchQuery("méd"))
    assert set(found.ids) >= {"PL-OIL", "IS-LAEKNA", "DE-BAEK"}
    assert places.search(SearchQuery("jordmo")).ids == []  # a midwife term: nobody here
    # a single letter is not used as a prefix
    assert places.search(SearchQuery("s")).ids == []


def test_multi_word_queries_need_every_word(places: SearchIndex) -> None:
    assert sorted(places.search(SearchQuery("lekarz")).ids) == ["DE-BAEK", "IS-LAEKNA", "PL-OIL"]
    assert places.search(SearchQuery("lekarz Łódź")).ids == ["PL-OIL"]
    assert places.search(SearchQuery("Arzt Thorshöfn")).ids == ["IS-LAEKNA"]
    assert places.search(SearchQuery("lekarz Ørsta")).ids == []
    assert places.search(SearchQuery("lekarz zzzzqq")).total == 0


# --- filters -----------------------------------------------------------------------------------


@pytest.fixture
def regions(catalogue: Catalogue) -> SearchIndex:
    index = SearchIndex(catalogue)
    for authority_id, region in (("PT-NORTE", "PT11"), ("PT-LX", "PT17"), ("PT-ALG", "PT15")):
        index.add(
            authority(
                authority_id,
                ("pt", f"Ordem {authority_id}"),
                professions=("doctor",),
                region=region,
            )
        )
    index.add(authority("ES-MAD", ("es", "Colegio Madrid"), professions=("doctor",), region="ES30"))
    index.add(authority("PT-SD", ("pt", "Balcão"), professions=(), area="PQD", region="PT17"))
    return index


def test_filters_narrow_by_country_region_prefix_and_area(regions: SearchIndex) -> None:
    doctor = SearchQuery("médico")
    assert regions.search(doctor).total == 5
    assert sorted(regions.search(replace(doctor, country="PT")).ids) == [
        "PT-ALG",
        "PT-LX",
        "PT-NORTE",
        "PT-SD",
    ]
    assert sorted(regions.search(replace(doctor, region="PT17")).ids) == ["PT-LX", "PT-SD"]
    assert sorted(regions.search(replace(doctor, region="PT1")).ids) == [
        "PT-ALG",
        "PT-LX",
        "PT-NORTE",
        "PT-SD",
    ]
    assert regions.search(replace(doctor, country="PT", region="ES30")).ids == []
    assert regions.search(replace(doctor, area="SD")).ids == []
    assert regions.search(replace(doctor, area="PQD")).total == 5
    # a filter alone lists authorities in name order
    assert regions.search(SearchQuery(region="PT17")).ids == ["PT-SD", "PT-LX"]


# --- ranking -------------------------------------------------------------------------------------


@pytest.fixture
def ranked(catalogue: Catalogue) -> SearchIndex:
    index = SearchIndex(catalogue)
    index.add(authority("NO-B", ("en", "Doctor Registry"), professions=("architect",)))
    index.add(authority("NO-C", ("en", "Doctors Council"), professions=("architect",)))
    index.add(authority("NO-D", ("en", "Zeta Unit"), professions=("doctor",)))
    index.add(authority("NO-A", ("en", "Alpha Unit"), professions=("doctor",)))
    index.add(authority("NO-E", ("en", "Docent Office"), professions=("dentist",)))
    index.add(authority("NO-F", ("en", "Omega Unit"), professions=()))
    return index


def test_ranking_name_exact_then_name_prefix_then_terms_then_the_rest(
    ranked: SearchIndex,
) -> None:
    result = ranked.search(SearchQuery("doctor"))
    # exact name word, name prefix (doctors), then competent for doctors by name
    # order (Alpha before Zeta), then the whole-area authority.
    assert result.ids == ["NO-B", "NO-C", "NO-A", "NO-D", "NO-F"]
    kinds = [hit.score[1] for hit in result.hits]
    assert kinds == [
        MatchKind.NAME_EXACT,
        MatchKind.NAME_PREFIX,
        MatchKind.TERM_EXACT,
        MatchKind.TERM_EXACT,
        MatchKind.OTHER,
    ]
    assert result.hits[0].name_matched and not result.hits[2].name_matched
    assert result.hits[2].professions == ("doctor",)


def test_more_words_matched_in_better_ways_rank_first(ranked: SearchIndex) -> None:
    ranked.add(authority("NO-G", ("en", "Doctor Alpha Registry"), professions=("doctor",)))
    ranked.add(authority("NO-K", ("en", "Alpha Registry"), professions=("doctor",)))
    result = ranked.search(SearchQuery("doctor registry"))
    # NO-B's whole name is the query; NO-G has both words in its name; NO-K one
    # word in its name and "doctor" through its competence. NO-A (competent for
    # doctors) lacks "registry": every word must match.
    assert result.ids == ["NO-B", "NO-G", "NO-K"]
    assert result.hits[0].score[0] == 2
    assert result.hits[1].score[1:3] == (MatchKind.NAME_EXACT, MatchKind.NAME_EXACT)
    assert result.hits[2].score[1:3] == (MatchKind.NAME_EXACT, MatchKind.TERM_EXACT)


def test_the_whole_query_as_id_or_full_name_ranks_first(ranked: SearchIndex) -> None:
    assert ranked.search(SearchQuery("no-d")).ids[0] == "NO-D"
    ranked.add(authority("NO-H", ("en", "Doctor"), professions=()))
    assert ranked.search(SearchQuery("DOCTOR")).ids[0] == "NO-H"
    # A look-alike letter is another word: the id does not match.
    assert "NO-D" not in ranked.search(SearchQuery("N\u041e-D")).ids


def test_authorities_working_in_the_searchers_language_rank_first_among_equals(
    catalogue: Catalogue,
) -> None:
    index = SearchIndex(catalogue)
    index.add(authority("SE-A", ("sv", "Aaa"), professions=("nurse",), languages=("sv",)))
    index.add(authority("SE-B", ("sv", "Bbb"), professions=("nurse",), languages=("sv", "fi")))
    assert index.search(SearchQuery("sjuksköterska")).ids == ["SE-A", "SE-B"]
    assert index.search(SearchQuery("sjuksköterska", lang="fi")).ids == ["SE-B", "SE-A"]


def test_hits_give_the_name_in_the_searchers_language(catalogue: Catalogue) -> None:
    index = SearchIndex(catalogue)
    index.add(
        authority(
            "NO-H",
            ("nn", "Helsedirektoratet"),
            ("en", "Directorate of Health"),
            professions=("doctor",),
        )
    )
    hit = index.search(SearchQuery("lege", lang="en")).hits[0]
    assert (hit.name, hit.name_lang) == ("Directorate of Health", "en")
    assert index.search(SearchQuery("lege", lang="nn")).hits[0].name == "Helsedirektoratet"
    assert index.search(SearchQuery("lege", lang="pt")).hits[0].name == "Helsedirektoratet"
    assert index.profession_label("doctor", "nn") == "lege"


def test_limit_and_total(by_profession: SearchIndex) -> None:
    result = by_profession.search(SearchQuery("unit", limit=3))
    assert result.total == 12 and len(result.hits) == 3
    assert [h.rank for h in result.hits] == [1, 2, 3]


# --- updates --------------------------------------------------------------------------------------


def test_updates_and_removals_are_searchable_at_once(catalogue: Catalogue) -> None:
    index = SearchIndex(catalogue)
    index.add(authority("NO-X", ("nn", "Tannlegeforeininga"), professions=("dentist",)))
    assert index.search(SearchQuery("tannlegefor")).ids == ["NO-X"]
    index.add(authority("NO-X", ("nn", "Jordmorforbundet"), professions=("midwife",)))
    assert index.search(SearchQuery("tannlegefor")).ids == []
    assert index.search(SearchQuery("jordmor")).ids == ["NO-X"]
    assert len(index) == 1
    added, removed = index.replace_node(
        "NO", [authority("NO-Y", ("nn", "Farmasøytforeininga"), professions=("pharmacist",))]
    )
    assert (added, removed) == (1, 1)
    assert index.search(SearchQuery("jordmor")).ids == []
    assert index.search(SearchQuery("farmasoyt")).ids == ["NO-Y"]
    assert index.replace_node("NO", [index.entry("NO-Y")]) == (0, 0)  # type: ignore[list-item]
    assert index.remove("NO-Y") and not index.remove("NO-Y")
    assert index.search(SearchQuery(country="NO")).total == 0


# --- queries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"text": "   "},
        {"text": "x" * 201},
        {"text": " ".join(["word"] * 11)},
        {"text": "lege", "country": "XX"},
        {"text": "lege", "region": "pt17"},
        {"text": "lege", "area": "pqd"},
        {"text": "lege", "limit": 0},
        {"text": "lege", "limit": 201},
    ],
)
def test_invalid_queries_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(SearchQueryInvalid):
        SearchQuery(**kwargs)  # type: ignore[arg-type]


def test_an_unknown_language_is_the_catalogues_error() -> None:
    with pytest.raises(CatalogueLanguageUnknown):
        SearchQuery("lege", lang="xx")


# --- the benchmark -----------------------------------------------------------------------------------


def test_the_benchmark_runs_and_reports_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--authorities", "300", "--queries", "60", "--json"])
    assert bench.run(args) == 0
    figures = json.loads(capsys.readouterr().out)
    for field in (
        "authorities",
        "queries",
        "build_seconds",
        "index_memory_mb",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "queries_per_second",
        "target_p95_ms",
    ):
        assert field in figures
    assert figures["authorities"] == 300 and figures["queries"] == 60
    assert figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]


def test_the_generator_is_deterministic_and_valid(catalogue: Catalogue) -> None:
    from gateway.core.directory import validate_authority

    first = bench.generate_authorities(60, seed=7, catalogue=catalogue)
    assert first == bench.generate_authorities(60, seed=7, catalogue=catalogue)
    assert len({e.authority_id for e in first}) == 60
    assert {e.authority_id[:2] for e in first} == set(bench.REGIONS)
    for entry in first:
        validate_authority(entry, node_id=entry.authority_id[:2], catalogue=catalogue)
    queries = bench.generate_queries(100, first, seed=3, catalogue=catalogue)
    assert len(queries) == 100 and any(q.country or q.region or q.area for q in queries)
