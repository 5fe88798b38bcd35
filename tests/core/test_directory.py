"""gateway.core.directory: registration rules, versions and increments, applying updates."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.core import directory as rules
from gateway.core import pki
from gateway.core.catalogue import (
    Area,
    Catalogue,
    CatalogueCodeUnknown,
    CatalogueLanguageUnknown,
    QuestionSet,
    load_catalogues,
)
from gateway.core.directory import (
    CachedDirectory,
    PublishedDirectory,
    apply_update,
    bind_certificates,
    check_authority_id,
    check_peer_certificates,
    validate_authority,
)
from gateway.core.directory.document import (
    Address,
    AuthorityDirectory,
    AuthorityEntry,
    Competence,
    DirectoryInconsistent,
    build_directory,
    read_directory,
)
from gateway.core.docxml import LocalizedText

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogues().latest


def entry(authority_id: str = "NO-HELSEDIR", **changes: object) -> AuthorityEntry:
    base = AuthorityEntry(
        authority_id=authority_id,
        names=(LocalizedText("Helsedirektoratet", "nn"), LocalizedText("Health", "en")),
        address=Address(("Postboks 220 Skøyen",), "Oslo", authority_id[:2], postal_code="0213"),
        region="NO08" if authority_id.startswith("NO") else None,
        competences=(Competence("PQD", ("PQD-DOCTOR",), ("doctor",)),),
        working_languages=("nn", "nb", "en"),
        certificates=(),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# --- ids --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lookalike",
    [
        "N\u041e-HELSEDIR",  # Cyrillic capital O
        "NO-HELSED\u0406R",  # Cyrillic capital I (Ukrainian)
        "NO-\u0397ELSEDIR",  # Greek capital eta
        "NO-HELSEDIR\u200b",  # zero-width space
        "\uff2e\uff2f-HELSEDIR",  # full-width N and O
    ],
)
def test_lookalike_authority_ids_are_refused_naming_the_character(lookalike: str) -> None:
    with pytest.raises(rules.AuthorityIdMalformed) as info:
        check_authority_id(lookalike, "NO")
    assert "U+" in str(info.value) and "look-alike" in str(info.value)


@pytest.mark.parametrize("bad", ["NO", "NO-", "no-helsedir", "NO-HELSE DIR", "NO--X-", "XX-ABC"])
def test_malformed_authority_ids_are_refused(bad: str) -> None:
    with pytest.raises(rules.AuthorityIdMalformed):
        check_authority_id(bad)


def test_an_authority_of_another_country_is_refused() -> None:
    assert check_authority_id("NO-HELSEDIR", "NO") == "NO-HELSEDIR"
    with pytest.raises(rules.AuthorityCountryMismatch):
        check_authority_id("PT-OMD", "NO")


# --- validation against the catalogue ------------------------------------------------------


def test_a_valid_authority_is_normalised(catalogue: Catalogue) -> None:
    messy = entry(
        names=(LocalizedText("  Helse\n direktoratet ", "nn"),),
        competences=(Competence("PQD", ("PQD-DOCTOR", "PQD-DOCTOR"), ("doctor", "nurse")),),
    )
    checked = validate_authority(messy, node_id="NO", catalogue=catalogue)
    assert checked.names[0].text == "Helse direktoratet"
    assert checked.competences[0].question_sets == ("PQD-DOCTOR",)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"competences": (Competence("NOPE"),)}, CatalogueCodeUnknown),
        ({"competences": (Competence("PQD", ("PQD-ASTRONAUT",)),)}, CatalogueCodeUnknown),
        ({"competences": (Competence("PQD", (), ("astronaut",)),)}, CatalogueCodeUnknown),
        ({"working_languages": ("nn", "tlh")}, CatalogueLanguageUnknown),
        ({"names": (LocalizedText("X", "xx"),)}, CatalogueLanguageUnknown),
        ({"names": ()}, rules.AuthorityFieldInvalid),
        (
            {"names": (LocalizedText("A", "nn"), LocalizedText("B", "nn"))},
            rules.AuthorityFieldInvalid,
        ),
        ({"names": (LocalizedText("Helse\u202edir", "nn"),)}, rules.AuthorityFieldInvalid),
        ({"names": (LocalizedText("x" * 301, "nn"),)}, rules.AuthorityFieldInvalid),
        ({"working_languages": ()}, rules.AuthorityFieldInvalid),
        ({"working_languages": ("nn", "nn")}, rules.AuthorityFieldInvalid),
        ({"competences": ()}, rules.AuthorityFieldInvalid),
        ({"region": "PT17"}, rules.AuthorityFieldInvalid),
        ({"region": "no08"}, rules.AuthorityFieldInvalid),
        ({"address": Address((), "Oslo", "NO")}, rules.AuthorityFieldInvalid),
        ({"address": Address(("a",), "Oslo", "SE")}, rules.AuthorityFieldInvalid),
        (
            {"competences": (Competence("PQD"), Competence("PQD"))},
            rules.AuthorityCompetenceInvalid,
        ),
    ],
)
def test_invalid_authorities_are_refused_with_stable_codes(
    catalogue: Catalogue, changes: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        validate_authority(entry(**changes), node_id="NO", catalogue=catalogue)


@pytest.fixture(scope="module")
def two_areas(catalogue: Catalogue) -> Catalogue:
    """The installed catalogue plus a second legislation area, SD, with one question set."""
    sd_set = QuestionSet("SD-GENERAL", "SD", {}, None, (), "sd.xml")
    sd = Area("SD", "Directive 2006/123/EC", {}, ("SD-GENERAL",), "sd.xml")
    return Catalogue(
        version="2026.99",
        files=(),
        areas={**catalogue.areas, "SD": sd},
        question_sets={**catalogue.question_sets, "SD-GENERAL": sd_set},
        option_lists=catalogue.option_lists,
        professions=catalogue.profession_map,
    )


@pytest.mark.parametrize(
    "competence",
    [
        Competence("PQD", ("SD-GENERAL",)),  # a question set of another area
        Competence("SD", ("PQD-DOCTOR",)),
        Competence("SD", (), ("doctor",)),  # a profession without a question set in SD
    ],
)
def test_codes_of_another_legislation_area_are_refused(
    two_areas: Catalogue, competence: Competence
) -> None:
    with pytest.raises(rules.AuthorityCompetenceInvalid):
        validate_authority(entry(competences=(competence,)), node_id="NO", catalogue=two_areas)
    both = (Competence("PQD", (), ("doctor",)), Competence("SD", ("SD-GENERAL",)))
    assert validate_authority(entry(competences=both), node_id="NO", catalogue=two_areas)


# --- certificates -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.make_ca("NO", now=NOW - timedelta(days=1))


def der(issued: pki.Issued) -> bytes:
    return issued.certificate.public_bytes(serialization.Encoding.DER)


def test_bind_certificates_lists_the_newest_four_bound_to_the_authority(ca: pki.Issued) -> None:
    certs = [
        pki.issue_national_system(ca, "NO-HELSEDIR", now=NOW - timedelta(days=10 - i)).certificate
        for i in range(5)
    ]
    bound = bind_certificates(entry(), certs)
    assert len(bound.certificates) == rules.MAX_CERTIFICATES
    assert bound.certificates[0] == certs[-1].public_bytes(serialization.Encoding.DER)
    other = pki.issue_national_system(ca, "NO-UDIR", now=NOW).certificate
    with pytest.raises(rules.DirectoryCertificateInvalid):
        bind_certificates(entry(), [other])
    with pytest.raises(rules.AuthorityCertificateMissing):
        bind_certificates(entry(), [])


def test_peer_certificates_must_be_bound_and_issued_by_the_peer_ca(ca: pki.Issued) -> None:
    good = pki.issue_national_system(ca, "NO-HELSEDIR", now=NOW)
    directory = AuthorityDirectory("NO", 1, NOW, (entry(certificates=(der(good),)),))
    check_peer_certificates(directory, ca.certificate)

    other_ca = pki.make_ca("NO", now=NOW)
    foreign = pki.issue_national_system(other_ca, "NO-HELSEDIR", now=NOW)
    forged = replace(directory, authorities=(entry(certificates=(der(foreign),)),))
    with pytest.raises(rules.DirectoryCertificateInvalid, match="not issued"):
        check_peer_certificates(forged, ca.certificate)

    misbound = pki.issue_national_system(ca, "NO-UDIR", now=NOW)
    swapped = replace(directory, authorities=(entry(certificates=(der(misbound),)),))
    with pytest.raises(rules.DirectoryCertificateInvalid, match="not bound"):
        check_peer_certificates(swapped, ca.certificate)


# --- publishing ---------------------------------------------------------------------------------


def with_cert(e: AuthorityEntry, ca: pki.Issued) -> AuthorityEntry:
    return replace(e, certificates=(der(pki.issue_national_system(ca, e.authority_id, now=NOW)),))


def test_commit_versions_only_real_changes_and_records_them(ca: pki.Issued) -> None:
    a, b = with_cert(entry("NO-A"), ca), with_cert(entry("NO-B"), ca)
    empty = PublishedDirectory("NO")
    v1 = empty.commit([], NOW)
    assert (v1.version, v1.entries) == (1, {})  # the first publication, even when empty
    v2 = v1.commit([a, b], NOW)
    assert v2.version == 2 and v2.commit([b, a], NOW) is v2
    v3 = v2.commit([a], NOW - timedelta(hours=1))  # a clock step backwards
    assert v3.version == 3 and v3.created == NOW
    assert v3.history[-1] == rules.Change(3, NOW, (), ("NO-B",))
    with pytest.raises(DirectoryInconsistent):
        v3.commit([with_cert(entry("PT-OMD"), pki.make_ca("PT", now=NOW))], NOW)


def test_since_answers_increments_within_the_history(ca: pki.Issued) -> None:
    entries = {i: with_cert(entry(f"NO-A{i}"), ca) for i in range(5)}
    state = PublishedDirectory("NO", history=()).commit(entries.values(), NOW)  # v1
    state = state.commit([*entries.values()][:4], NOW)  # v2: A4 removed
    state = state.commit(
        [replace(entries[0], region="NO09"), *[*entries.values()][1:4]], NOW
    )  # v3: A0 changed
    update = state.since(2)
    assert update is not None and update.base_version == 2
    assert [e.authority_id for e in update.authorities] == ["NO-A0"] and update.removed == ()
    update = state.since(1)
    assert update is not None
    assert [e.authority_id for e in update.authorities] == ["NO-A0"]
    assert update.removed == ("NO-A4",)
    assert state.since(3) is None
    assert state.since(None) == state.full()
    assert state.since(7) == state.full()
    # every answer builds and reads back as a valid document
    for since in (None, 1, 2):
        directory = state.since(since)
        assert directory is not None
        assert read_directory(build_directory(directory)) == directory


def test_nothing_published_cannot_be_served() -> None:
    with pytest.raises(rules.DirectoryNotPublished):
        PublishedDirectory("NO").full()


# --- applying updates ---------------------------------------------------------------------------


def full(version: int, *entries: AuthorityEntry, created: datetime = NOW) -> AuthorityDirectory:
    return AuthorityDirectory("NO", version, created, entries)


def test_a_full_directory_replaces_the_cache_and_reports_the_differences() -> None:
    a, b = entry("NO-A"), entry("NO-B")
    first = apply_update(None, full(1, a, b), peer_id="NO")
    assert first.full and first.changed == ("NO-A", "NO-B") and first.removed == ()
    second = apply_update(
        first.directory,
        full(2, replace(a, region="NO09"), created=NOW + timedelta(1)),
        peer_id="NO",
    )
    assert second.changed == ("NO-A",) and second.removed == ("NO-B",)
    again = apply_update(
        second.directory,
        full(2, replace(a, region="NO09"), created=NOW + timedelta(1)),
        peer_id="NO",
    )
    assert again.unchanged


def test_an_increment_applies_only_to_its_base() -> None:
    cached = CachedDirectory("NO", 3, NOW, {"NO-A": entry("NO-A"), "NO-B": entry("NO-B")})
    update = AuthorityDirectory(
        "NO", 5, NOW, (entry("NO-C"),), removed=("NO-A", "NO-X"), base_version=3
    )
    result = apply_update(cached, update, peer_id="NO")
    assert list(result.directory.entries) == ["NO-B", "NO-C"]
    assert result.changed == ("NO-C",) and result.removed == ("NO-A",)
    assert result.directory.version == 5
    assert apply_update(result.directory, update, peer_id="NO").unchanged
    with pytest.raises(rules.DirectoryBaseMismatch):
        apply_update(cached, replace(update, base_version=2), peer_id="NO")
    with pytest.raises(rules.DirectoryBaseMismatch):
        apply_update(None, update, peer_id="NO")


def test_stale_directories_are_refused_but_a_restored_peer_is_accepted() -> None:
    cached = apply_update(None, full(5, entry("NO-A")), peer_id="NO").directory
    with pytest.raises(rules.DirectoryStale):
        apply_update(cached, full(4, entry("NO-A"), created=NOW - timedelta(1)), peer_id="NO")
    with pytest.raises(rules.DirectoryStale):
        apply_update(cached, full(5, entry("NO-B"), created=NOW - timedelta(1)), peer_id="NO")
    restored = apply_update(
        cached, full(2, entry("NO-B"), created=NOW + timedelta(1)), peer_id="NO"
    )
    assert restored.directory.version == 2 and list(restored.directory.entries) == ["NO-B"]


def test_a_directory_of_another_node_or_country_is_refused() -> None:
    with pytest.raises(rules.DirectoryNodeMismatch):
        apply_update(None, full(1, entry("NO-A")), peer_id="PT")
    foreign = AuthorityDirectory.__new__(AuthorityDirectory)
    object.__setattr__(foreign, "node_id", "NO")
    object.__setattr__(foreign, "version", 1)
    object.__setattr__(foreign, "created", NOW)
    object.__setattr__(foreign, "authorities", (entry("PT-OMD"),))
    object.__setattr__(foreign, "removed", ())
    object.__setattr__(foreign, "base_version", None)
    with pytest.raises(DirectoryInconsistent):
        apply_update(None, foreign, peer_id="NO")
