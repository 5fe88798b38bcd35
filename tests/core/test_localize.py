"""Local rendering of received documents: catalogue texts in the node's languages,
labelled machine translations of free text, and the rendering's status."""

from __future__ import annotations

import dataclasses
import pathlib
from datetime import UTC, date, datetime

import pytest

from gateway.core import pki
from gateway.core.catalogue import (
    CatalogueLanguageUnknown,
    CatalogueRegistry,
    load_catalogue_dir,
    load_catalogues,
)
from gateway.core.documents import (
    Answer,
    Closure,
    ExchangeDocument,
    Header,
    InformationRequest,
    LocalizedText,
    Question,
    Reply,
    Request,
    to_bytes,
    to_xml,
)
from gateway.core.envelopes import (
    MachineTranslation,
    OptionText,
    QuestionText,
    Rendering,
    RenderingStatus,
    build_delivery,
    read_delivery,
)
from gateway.core.localize import (
    MAX_TEXT_CHARS,
    FreeText,
    TranslationKey,
    TranslationLike,
    free_texts,
    parse_document,
    renderings_for,
    text_sha256,
    translation_key,
)
from gateway.core.ns import LANGUAGES
from gateway.core.signing import Signer
from tests.core.test_catalogue import VERSION, make_version, set_xml, sets_file

T0 = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
NO, PT = "NO-HELSEDIR", "PT-OMD"
COMPLETE, PARTIAL, PENDING = (
    RenderingStatus.COMPLETE,
    RenderingStatus.PARTIAL,
    RenderingStatus.PENDING,
)
REGISTRY = load_catalogues()
CATALOGUE = REGISTRY.get(VERSION)


@dataclasses.dataclass(frozen=True)
class MT:
    """A translation as the adapters make it (the fields a rendering reads)."""

    source_lang: str
    target_lang: str
    text: str
    engine: str = "libretranslate"


def header(*, cat: str | None = VERSION, reply: str | None = "DOC-0", n: int = 1) -> Header:
    return Header("EX-1", f"DOC-{n}", PT, NO, T0, cat, reply)


def request(*questions: Question, cat: str = VERSION) -> Request:
    return Request(
        header=header(cat=cat, reply=None, n=0),
        legislation_area="PQD",
        question_set="PQD-GENERAL",
        sender_language="pt",
        requested_reply_date=date(2026, 3, 16),
        questions=questions,
    )


def answer(*replies: Reply, cat: str = VERSION, note: LocalizedText | None = None) -> Answer:
    return Answer(header=header(cat=cat), replies=replies, note=note)


def texts(rendering: Rendering) -> dict[str, str]:
    return {q.code: q.text for q in rendering.question_texts}


def options(rendering: Rendering) -> dict[tuple[str, str], str]:
    return {(o.question, o.code): o.text for o in rendering.option_texts}


def by_lang(renderings: tuple[Rendering, ...]) -> dict[str, Rendering]:
    return {r.lang: r for r in renderings}


# --- catalogue texts -----------------------------------------------------------------


def test_request_questions_are_rendered_in_nynorsk_and_portuguese() -> None:
    doc = request(Question("PQD-GENERAL-001"), Question("PQD-GENERAL-007"))
    nn, pt = renderings_for(REGISTRY, doc, ["nn", "pt"], {})
    assert (nn.lang, pt.lang) == ("nn", "pt")
    assert nn.status is COMPLETE and pt.status is COMPLETE
    assert nn.catalogue_version == pt.catalogue_version == VERSION
    assert nn.question_texts == (
        QuestionText("PQD-GENERAL-001", "Er det vedlagde vitnemålet ekte?"),
        QuestionText(
            "PQD-GENERAL-007", "Kva er den noverande registreringsstatusen til yrkesutøvaren?"
        ),
    )
    assert texts(pt) == {
        "PQD-GENERAL-001": "O diploma anexo é autêntico?",
        "PQD-GENERAL-007": "Qual é a situação atual de inscrição do profissional?",
    }
    assert nn.option_texts == pt.option_texts == ()
    assert nn.translations == pt.translations == ()


def test_answer_coded_options_are_rendered_with_their_questions() -> None:
    doc = answer(
        Reply("PQD-GENERAL-001", options=("YES",)),
        Reply("PQD-GENERAL-007", options=("SUSPENDED",)),
        Reply("PQD-GENERAL-010", options=("FINE", "RESTRICTION")),
        Reply("PQD-GENERAL-006", date=date(2019, 6, 30)),
    )
    nn, pt = renderings_for(REGISTRY, doc, ["nn", "pt"], {})
    assert nn.status is COMPLETE and pt.status is COMPLETE
    assert list(texts(nn)) == [
        "PQD-GENERAL-001",
        "PQD-GENERAL-007",
        "PQD-GENERAL-010",
        "PQD-GENERAL-006",
    ]
    assert nn.option_texts[:2] == (
        OptionText("PQD-GENERAL-001", "YES", "Ja"),
        OptionText("PQD-GENERAL-007", "SUSPENDED", "Registreringa er suspendert"),
    )
    assert options(pt)[("PQD-GENERAL-001", "YES")] == "Sim"
    assert options(pt)[("PQD-GENERAL-007", "SUSPENDED")] == "Inscrição suspensa"
    assert options(pt)[("PQD-GENERAL-010", "FINE")] == "Multa"
    assert options(nn)[("PQD-GENERAL-010", "FINE")] == "Bot"
    assert len(pt.option_texts) == 4  # a date is a value, not a catalogue text


@pytest.mark.parametrize("qset", sorted(CATALOGUE.question_sets))
def test_every_question_of_every_installed_set_renders_in_nn_and_pt(qset: str) -> None:
    # PQD-GENERAL always; the profession sets (PQD-DOCTOR, ...) whenever they are installed.
    codes = CATALOGUE.question_set(qset).question_codes
    doc = request(*(Question(code) for code in codes))
    for rendering in renderings_for(REGISTRY, doc, ["nn", "pt"], {}):
        assert rendering.status is COMPLETE
        assert list(texts(rendering)) == list(codes)
        for code, text in texts(rendering).items():
            assert text == CATALOGUE.text(code, rendering.lang).text


def test_languages_are_rendered_once_each_in_the_order_given() -> None:
    doc = request(Question("PQD-GENERAL-001"))
    renderings = renderings_for(REGISTRY, doc, ["pt", "nn", "pt", "nb"], {})
    assert [r.lang for r in renderings] == ["pt", "nn", "nb"]
    assert texts(by_lang(renderings)["nb"]) == {
        "PQD-GENERAL-001": "Er det vedlagte vitnemålet ekte?"
    }


def test_a_language_outside_the_27_is_a_configuration_error() -> None:
    with pytest.raises(CatalogueLanguageUnknown):
        renderings_for(REGISTRY, request(Question("PQD-GENERAL-001")), ["no"], {})


# --- what cannot be rendered: PARTIAL, never an exception ----------------------------


def test_unknown_question_code_gives_partial_rendering_of_the_rest() -> None:
    doc = request(Question("PQD-GENERAL-001"), Question("PQD-GENERAL-999"))
    nn, pt = renderings_for(REGISTRY, doc, ["nn", "pt"], {})
    assert nn.status is PARTIAL and pt.status is PARTIAL
    assert texts(nn) == {"PQD-GENERAL-001": "Er det vedlagde vitnemålet ekte?"}


def test_unknown_option_or_option_of_a_question_without_options_gives_partial() -> None:
    doc = answer(
        Reply("PQD-GENERAL-001", options=("PERHAPS",)),
        Reply("PQD-GENERAL-006", options=("YES",)),  # a date question takes no option
        Reply("PQD-GENERAL-007", options=("REGISTERED",)),
    )
    (nn,) = renderings_for(REGISTRY, doc, ["nn"], {})
    assert nn.status is PARTIAL
    assert nn.option_texts == (
        OptionText("PQD-GENERAL-007", "REGISTERED", "Registrert og har rett til å utøve yrket"),
    )
    assert len(nn.question_texts) == 3


def test_unknown_catalogue_version_gives_partial_renderings_without_texts() -> None:
    doc = answer(Reply("PQD-GENERAL-001", options=("YES",)), cat="2099.9")
    nn, pt = renderings_for(REGISTRY, doc, ["nn", "pt"], {})
    for rendering in (nn, pt):
        assert rendering.status is PARTIAL
        assert rendering.catalogue_version is None
        assert rendering.question_texts == rendering.option_texts == ()


def test_text_missing_in_a_language_falls_back_to_english_and_is_partial(
    tmp_path: pathlib.Path,
) -> None:
    langs = [lang for lang in LANGUAGES if lang != "nn"]
    directory = make_version(tmp_path, {"m.xml": sets_file("PQD", set_xml("PQD-M", langs=langs))})
    registry = CatalogueRegistry([load_catalogue_dir(directory)])
    doc = answer(Reply("PQD-M-001", options=("YES",)), cat="2099.1")
    nn, pt = renderings_for(registry, doc, ["nn", "pt"], {})
    assert nn.status is PARTIAL
    assert texts(nn) == {"PQD-M-001": "Question PQD-M-001? [en]"}
    assert options(nn) == {("PQD-M-001", "YES"): "Ja"}
    assert pt.status is COMPLETE
    assert texts(pt) == {"PQD-M-001": "Question PQD-M-001? [pt]"}


# --- free text and machine translation ------------------------------------------------


def test_free_texts_lists_question_reply_and_note_fields_without_blank_ones() -> None:
    req = request(
        Question("PQD-GENERAL-001", LocalizedText("O diploma foi emitido em 2010.", "pt")),
        Question("PQD-GENERAL-004", LocalizedText("   ", "pt")),
        Question("PQD-GENERAL-007"),
    )
    assert free_texts(req) == [
        FreeText("Question/PQD-GENERAL-001", "O diploma foi emitido em 2010.", "pt")
    ]
    ans = answer(
        Reply("PQD-GENERAL-004", free_text=LocalizedText("Seks år.", "nn")),
        Reply("PQD-GENERAL-001", options=("YES",)),
        note=LocalizedText("Sjå vedlegget.", "nn"),
    )
    assert [(f.field, f.lang) for f in free_texts(ans)] == [
        ("Reply/PQD-GENERAL-004", "nn"),
        ("Note", "nn"),
    ]
    info = InformationRequest(
        header=header(),
        note=LocalizedText("Send the diploma, please.", "en"),
        questions=(Question("PQD-GENERAL-005", LocalizedText("Certified copy.", "en")),),
    )
    assert [f.field for f in free_texts(info)] == ["Question/PQD-GENERAL-005", "Note"]
    assert free_texts(Closure(header=header())) == []


def test_free_text_is_kept_out_of_repr() -> None:
    free = FreeText("Note", "Maria Helena Sousa Carvalho", "pt")
    assert "Maria" not in repr(free)
    assert free.sha256 == text_sha256("Maria Helena Sousa Carvalho")
    assert translation_key(free.text, "nn") == (free.sha256, "nn")


def test_free_text_makes_rendering_pending_until_its_translation_arrives() -> None:
    original = "O diploma foi emitido em 2010 pela Universidade de Coimbra."
    doc = request(
        Question("PQD-GENERAL-001", LocalizedText(original, "pt")), Question("PQD-GENERAL-007")
    )
    nn, pt = renderings_for(REGISTRY, doc, ["nn", "pt"], {})
    assert nn.status is PENDING
    assert nn.translations == ()
    assert len(nn.question_texts) == 2  # the codes are rendered meanwhile
    assert pt.status is COMPLETE  # already in Portuguese: nothing to translate

    arrived: dict[TranslationKey, TranslationLike] = {
        translation_key(original, "nn"): MT("pt", "nn", "Vitnemålet vart utferda i 2010.")
    }
    nn, pt = renderings_for(REGISTRY, doc, ["nn", "pt"], arrived)
    assert nn.status is COMPLETE
    assert nn.translations == (
        MachineTranslation(
            text_field="Question/PQD-GENERAL-001",
            engine="libretranslate",
            source_language="pt",
            target_language="nn",
            text="Vitnemålet vart utferda i 2010.",
        ),
    )
    assert texts(nn)["PQD-GENERAL-001"] == "Er det vedlagde vitnemålet ekte?"
    assert pt.translations == ()
    # The original stays in the document, untouched.
    assert doc.questions[0].free_text == LocalizedText(original, "pt")


def test_translation_given_up_is_not_pending_but_partial() -> None:
    doc = answer(
        Reply("PQD-GENERAL-001", options=("NO",)), note=LocalizedText("Sem registo.", "pt")
    )
    key = translation_key("Sem registo.", "nn")
    (awaited,) = renderings_for(REGISTRY, doc, ["nn"], {}, pending={key})
    (given_up,) = renderings_for(REGISTRY, doc, ["nn"], {}, pending=set())
    assert awaited.status is PENDING
    assert given_up.status is PARTIAL
    assert given_up.translations == ()


def test_pending_wins_over_partial() -> None:
    doc = answer(Reply("PQD-GENERAL-999", free_text=LocalizedText("Não sei.", "pt")))
    (nn,) = renderings_for(REGISTRY, doc, ["nn"], {})
    assert nn.status is PENDING


@pytest.mark.parametrize(
    "translation",
    [
        MT("es", "nn", "Feil kjeldespråk."),  # not a translation from the text's language
        MT("pt", "nb", "Feil målspråk."),  # not into the rendering's language
        MT("pt", "nn", "Ugyldig motor.", engine="bad engine!"),  # not an EngineName
        MT("pt", "nn", " \x00\x01 "),  # nothing left after cleaning
    ],
)
def test_unusable_translations_are_ignored(translation: MT) -> None:
    doc = answer(Reply("PQD-GENERAL-004", free_text=LocalizedText("Seis anos.", "pt")))
    key = translation_key("Seis anos.", "nn")
    (nn,) = renderings_for(REGISTRY, doc, ["nn"], {key: translation}, pending=set())
    assert nn.translations == ()
    assert nn.status is PARTIAL


def test_long_or_dirty_translation_is_cleaned_cut_and_still_makes_a_valid_delivery() -> None:
    note = "Observação. " * 300
    doc = answer(Reply("PQD-GENERAL-001", options=("YES",)), note=LocalizedText(note.strip(), "pt"))
    long_text = "Merknad\x0b. " * 600  # a vertical tab XML cannot carry, and > 4000 chars
    key = translation_key(note.strip(), "nn")
    (nn,) = renderings_for(REGISTRY, doc, ["nn"], {key: MT("pt", "nn", long_text)})
    (mt,) = nn.translations
    assert len(mt.text) == MAX_TEXT_CHARS and mt.text.endswith("…")
    assert "\x0b" not in mt.text
    assert nn.status is PARTIAL  # the translation was cut
    body = to_bytes(doc)
    delivery = read_delivery(build_delivery("dlv-1", "NO", NO, T0, "EX-1", "Answer", body, (nn,)))
    assert delivery.renderings == (nn,)
    assert delivery.document == body


def test_same_language_text_needs_no_translation_in_that_language() -> None:
    doc = answer(
        Reply("PQD-GENERAL-004", free_text=LocalizedText("Seks år.", "nn")),
    )
    nn, nb = renderings_for(REGISTRY, doc, ["nn", "nb"], {})
    assert nn.status is COMPLETE
    assert nb.status is PENDING
    key = translation_key("Seks år.", "nb")
    nn, nb = renderings_for(REGISTRY, doc, ["nn", "nb"], {key: MT("nn", "nb", "Seks år.")})
    assert nb.status is COMPLETE
    assert [t.text_field for t in nb.translations] == ["Reply/PQD-GENERAL-004"]
    assert nn.translations == ()


def test_document_without_codes_gets_renderings_with_note_translation_only() -> None:
    doc = Closure(header=header(cat=None), note=LocalizedText("Obrigado pela resposta.", "pt"))
    nn, pt = renderings_for(REGISTRY, doc, ["nn", "pt"], {})
    assert nn.status is PENDING and pt.status is COMPLETE
    assert nn.catalogue_version is None and nn.question_texts == ()
    key = translation_key("Obrigado pela resposta.", "nn")
    nn, _ = renderings_for(REGISTRY, doc, ["nn", "pt"], {key: MT("pt", "nn", "Takk for svaret.")})
    assert nn.status is COMPLETE
    assert nn.translations == (
        MachineTranslation("Note", "libretranslate", "pt", "nn", "Takk for svaret."),
    )


def test_information_request_renders_its_questions_and_translates_its_note() -> None:
    info = InformationRequest(
        header=header(),
        note=LocalizedText("Envie o diploma, por favor.", "pt"),
        questions=(Question("PQD-GENERAL-005"),),
    )
    key = translation_key("Envie o diploma, por favor.", "nn")
    (nn,) = renderings_for(REGISTRY, info, ["nn"], {key: MT("pt", "nn", "Send vitnemålet.")})
    assert nn.status is COMPLETE
    assert list(texts(nn)) == ["PQD-GENERAL-005"]
    assert [t.text_field for t in nn.translations] == ["Note"]


# --- reading the bytes ----------------------------------------------------------------


def test_parse_document_reads_signed_bytes_and_the_rendering_fits_the_delivery_xsd() -> None:
    ca = pki.make_ca("PT", now=T0)
    system = pki.issue_national_system(ca, PT, now=T0)
    doc = request(
        Question("PQD-GENERAL-001", LocalizedText("Diploma em anexo.", "pt")),
        Question("PQD-GENERAL-003"),
    )
    signed = Signer(system.key, system.certificate).sign(to_xml(doc))
    parsed: ExchangeDocument = parse_document(signed)
    assert parsed == doc
    renderings = renderings_for(REGISTRY, parsed, ["nn", "nb"], {})
    delivery = read_delivery(
        build_delivery("dlv-2", "NO", NO, T0, "EX-1", "Request", signed, renderings)
    )
    assert delivery.document == signed
    assert [r.status for r in delivery.renderings] == [PENDING, PENDING]
