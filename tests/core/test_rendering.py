"""Rendering a document's questions and coded answers into the node's languages."""

from __future__ import annotations

import pathlib

import pytest

from gateway.core.catalogue import (
    Catalogue,
    CatalogueAnswerMismatch,
    CatalogueCodeUnknown,
    CatalogueLanguageUnknown,
    load_catalogue_dir,
    load_catalogues,
)
from gateway.core.errors import InvalidInput
from gateway.core.ns import LANGUAGES
from gateway.core.rendering import Item, MachineTranslation, TranslationRequest, render
from tests.core.test_catalogue import VERSION, make_version, set_xml, sets_file


@pytest.fixture
def catalogue() -> Catalogue:
    return load_catalogues().get(VERSION)


def test_questions_and_chosen_options_are_rendered_in_every_node_language(
    catalogue: Catalogue,
) -> None:
    items = [
        Item("PQD-GENERAL-001", option="NO"),
        Item("PQD-GENERAL-007", option="SUSPENDED"),
        Item("PQD-GENERAL-006", date="2019-06-30"),
    ]
    rendering = render(catalogue, items, ["nn", "nb"], question_set="PQD-GENERAL")
    assert rendering.languages == ("nn", "nb")
    assert rendering.catalogue_version == VERSION
    assert rendering.catalogue_digest == catalogue.digest
    nn = rendering.for_language("nn")
    assert [(t.kind, t.code, t.question) for t in nn] == [
        ("questionSet", "PQD-GENERAL", ""),
        ("question", "PQD-GENERAL-001", "PQD-GENERAL-001"),
        ("option", "NO", "PQD-GENERAL-001"),
        ("question", "PQD-GENERAL-007", "PQD-GENERAL-007"),
        ("option", "SUSPENDED", "PQD-GENERAL-007"),
        ("question", "PQD-GENERAL-006", "PQD-GENERAL-006"),
    ]
    assert nn[1].text == "Er det vedlagde vitnemålet ekte?"
    assert nn[2].text == "Nei"
    assert rendering.text("SUSPENDED", "nn", question="PQD-GENERAL-007").text == (
        "Registreringa er suspendert"
    )
    assert rendering.text("SUSPENDED", "nb").text == "Registreringen er suspendert"
    assert not rendering.has_fallback
    assert all(t.text_lang == t.lang and not t.fallback for t in rendering.texts)
    assert len(rendering.texts) == 2 * len(nn)


def test_rendering_covers_every_one_of_the_27_languages(catalogue: Catalogue) -> None:
    rendering = render(catalogue, [Item("PQD-GENERAL-010", option="FINE")], LANGUAGES)
    fines = {t.lang: t.text for t in rendering.texts if t.code == "FINE"}
    assert set(fines) == set(LANGUAGES)
    assert (fines["de"], fines["fr"], fines["pl"]) == ("Geldbuße", "Amende", "Kara pieniężna")


def test_a_question_asked_twice_is_rendered_once_per_language(catalogue: Catalogue) -> None:
    items = [
        Item("PQD-GENERAL-001"),
        Item("PQD-GENERAL-001", option="YES"),
        Item("PQD-GENERAL-001"),
    ]
    rendering = render(catalogue, items, ["en", "en"])
    assert rendering.languages == ("en",)
    assert [t.code for t in rendering.texts] == ["PQD-GENERAL-001", "YES"]


def test_missing_translation_is_rendered_in_english_marked_fallback(tmp_path: pathlib.Path) -> None:
    langs = [lang for lang in LANGUAGES if lang != "nn"]
    directory = make_version(tmp_path, {"m.xml": sets_file("PQD", set_xml("PQD-M", langs=langs))})
    catalogue = load_catalogue_dir(directory)
    rendering = render(catalogue, [Item("PQD-M-001", option="YES")], ["nn"], question_set="PQD-M")
    by_code = {t.code: t for t in rendering.texts}
    assert by_code["PQD-M-001"].fallback is True
    assert by_code["PQD-M-001"].text_lang == "en"
    assert by_code["PQD-M-001"].text == "Question PQD-M-001? [en]"
    assert by_code["PQD-M"].fallback is True
    assert by_code["YES"].fallback is False and by_code["YES"].text == "Ja"
    assert rendering.has_fallback


@pytest.mark.parametrize(
    ("item", "question_set", "error"),
    [
        (Item("PQD-GENERAL-999"), None, CatalogueCodeUnknown),
        (Item("PQD-GENERAL-001", option="PERHAPS"), None, CatalogueCodeUnknown),
        (Item("PQD-GENERAL-001"), "PQD-NOPE", CatalogueCodeUnknown),
        (Item("PQD-GENERAL-006", option="YES"), None, CatalogueAnswerMismatch),
        (Item("PQD-GENERAL-001", date="2020-01-01"), None, CatalogueAnswerMismatch),
        (Item("PQD-GENERAL-006", date="30.06.2019"), None, CatalogueAnswerMismatch),
        (Item("PQD-GENERAL-006", date="2019-02-30"), None, CatalogueAnswerMismatch),
        (Item("PQD-GENERAL-004", free_text="Three years."), None, InvalidInput),
        (
            Item("PQD-GENERAL-004", free_text="Tre år.", free_text_lang="no"),
            None,
            CatalogueLanguageUnknown,
        ),
    ],
)
def test_items_that_do_not_fit_the_catalogue_are_refused(
    catalogue: Catalogue, item: Item, question_set: str | None, error: type[InvalidInput]
) -> None:
    with pytest.raises(error) as info:
        render(catalogue, [item], ["en"], question_set=question_set)
    assert info.value.code == error.code


def test_a_question_outside_the_named_set_is_refused(tmp_path: pathlib.Path) -> None:
    directory = make_version(tmp_path, {"o.xml": sets_file("PQD", set_xml("PQD-O"))})
    catalogue = load_catalogue_dir(directory)
    with pytest.raises(CatalogueCodeUnknown, match="not in question set PQD-GENERAL"):
        render(catalogue, [Item("PQD-O-001")], ["en"], question_set="PQD-GENERAL")


def test_unknown_or_no_target_language_is_refused(catalogue: Catalogue) -> None:
    with pytest.raises(CatalogueLanguageUnknown):
        render(catalogue, [Item("PQD-GENERAL-001")], ["nn", "se"])
    with pytest.raises(InvalidInput):
        render(catalogue, [Item("PQD-GENERAL-001")], [])


def test_free_text_in_another_language_is_listed_for_machine_translation(
    catalogue: Catalogue,
) -> None:
    items = [Item("PQD-GENERAL-004", free_text="Seis anos.", free_text_lang="pt")]
    rendering = render(catalogue, items, ["nn", "pt", "nb"])
    assert rendering.translation_requests == (
        TranslationRequest("PQD-GENERAL-004", "pt", "nn", "Seis anos."),
        TranslationRequest("PQD-GENERAL-004", "pt", "nb", "Seis anos."),
    )
    assert rendering.translations == ()
    # The free text itself is a value of the signed document, not a catalogue text.
    assert all("Seis anos." not in t.text for t in rendering.texts)

    translated = rendering.with_translations(
        [MachineTranslation("PQD-GENERAL-004", "eTranslation", "pt", "nn", "Seks år.")]
    )
    assert translated.translations == (
        MachineTranslation("PQD-GENERAL-004", "eTranslation", "pt", "nn", "Seks år."),
    )
    assert rendering.translations == ()  # renderings are immutable
    assert translated.texts == rendering.texts


def test_a_translation_nobody_asked_for_or_without_engine_is_refused(catalogue: Catalogue) -> None:
    items = [Item("PQD-GENERAL-004", free_text="Seis anos.", free_text_lang="pt")]
    rendering = render(catalogue, items, ["nn"])
    with pytest.raises(InvalidInput, match="needs translation"):
        rendering.with_translations(
            [MachineTranslation("PQD-GENERAL-004", "eTranslation", "pt", "de", "Sechs Jahre.")]
        )
    with pytest.raises(InvalidInput, match="engine"):
        rendering.with_translations(
            [MachineTranslation("PQD-GENERAL-004", "", "pt", "nn", "Seks år.")]
        )


def test_free_text_already_in_the_target_language_needs_no_translation(
    catalogue: Catalogue,
) -> None:
    items = [Item("PQD-GENERAL-012", free_text="2015–2020, Oslo.", free_text_lang="nn")]
    assert render(catalogue, items, ["nn"]).translation_requests == ()
