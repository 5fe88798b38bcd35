"""Local rendering of a received exchange document for the Delivery.

A receiving node hands its national system the original signed bytes plus,
for each of the node's languages, an ``envelopes.Rendering`` (docs/protocol.md
§6.4, Delivery): the catalogue texts of every question the document names and of
every coded answer it gives, from the catalogue version its header names,
and machine translations of its free text, each labelled with its engine and
language pair. A translation never replaces the original: the original stays
in the signed document, which the Delivery carries byte for byte.

What lives here (sans-IO, pure functions):

* :func:`parse_document`: signed bytes -> the exchange document (hardened
  parse + schema validation; the bytes were verified at admission, so
  reading them again is safe);
* :func:`free_texts`: the free texts of a document that may need machine
  translation, with their field ids (``Question/CODE``, ``Reply/CODE``,
  ``Note``: the delivery XSD's ``TextField``);
* :func:`translation_key` / :func:`text_sha256`: how translations are keyed,
  ``(SHA-256 of the text's UTF-8 bytes, target language)``;
* :func:`renderings_for`: the renderings, one per language.

Rendering never raises because of the document's content: the document was
admitted already. An unknown catalogue version, question or option, and a
text that falls back to English, make the rendering ``PARTIAL``; a missing
machine translation that is still awaited makes it ``PENDING``. The output
always fits the delivery XSD (counts capped, engine names checked,
translated text cleaned of characters XML cannot carry and cut to 4000
characters).

The twisted side (starting translations, keeping them, erasing them) is
``gateway.service.localization``. Nothing here logs: free text and its
translations are personal data.
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping, Sequence
from typing import NamedTuple, Protocol

from gateway.core.catalogue import (
    Catalogue,
    CatalogueRegistry,
    Texts,
    check_language,
    pick_text,
)
from gateway.core.documents import (
    Answer,
    ExchangeDocument,
    InformationRequest,
    LocalizedText,
    Request,
    read_exchange_document,
)
from gateway.core.docxml import sha256_hex
from gateway.core.envelopes import (
    MachineTranslation,
    OptionText,
    QuestionText,
    Rendering,
    RenderingStatus,
)
from gateway.core.xmlparse import parse_xml

__all__ = [
    "MAX_MACHINE_TRANSLATIONS",
    "MAX_OPTION_TEXTS",
    "MAX_QUESTION_TEXTS",
    "MAX_TEXT_CHARS",
    "NOTE_FIELD",
    "FreeText",
    "TranslationKey",
    "TranslationLike",
    "clean_translation",
    "free_texts",
    "parse_document",
    "renderings_for",
    "text_sha256",
    "translation_key",
]

#: The field id of a document's Note.
NOTE_FIELD = "Note"

#: Caps of the delivery XSD's Rendering (QuestionText, OptionText, MachineTranslation).
MAX_QUESTION_TEXTS = 200
MAX_OPTION_TEXTS = 2000
MAX_MACHINE_TRANSLATIONS = 500
#: Longest text the delivery XSD accepts (LongText); longer translations are cut.
MAX_TEXT_CHARS = 4000

#: (SHA-256 hex of the original text's UTF-8 bytes, target language).
TranslationKey = tuple[str, str]

# Engine names the delivery XSD accepts (EngineName).
_ENGINE_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}\Z")
# Characters XML 1.0 cannot carry (lxml refuses them in text).
_NOT_XML_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class TranslationLike(Protocol):
    """What a rendering needs of a machine translation.

    ``gateway.adapters.translation.Translation`` has these attributes.
    """

    @property
    def engine(self) -> str: ...

    @property
    def source_lang(self) -> str: ...

    @property
    def target_lang(self) -> str: ...

    @property
    def text(self) -> str: ...


class FreeText(NamedTuple):
    """One free text of a document: its field id, the text and its language.

    ``field`` is ``Question/CODE``, ``Reply/CODE`` or ``Note``. The text is
    personal data and is left out of ``repr``.
    """

    field: str
    text: str
    lang: str

    def __repr__(self) -> str:
        return f"FreeText(field={self.field!r}, lang={self.lang!r}, text=<{len(self.text)} chars>)"

    @property
    def sha256(self) -> str:
        """SHA-256 (hex) of the text's UTF-8 bytes."""
        return text_sha256(self.text)


def text_sha256(text: str) -> str:
    """The SHA-256 (lower-case hex) of ``text`` encoded as UTF-8.

    The cache key of a text in the translation adapters
    (``gateway.adapters.translation.text_sha256`` is this function) and
    ``Translation.original_sha256``.
    """
    return sha256_hex(text.encode("utf-8"))


def translation_key(text: str, target_lang: str) -> TranslationKey:
    """The key under which a translation of ``text`` into ``target_lang`` is looked up."""
    return (text_sha256(text), target_lang)


def parse_document(body: bytes) -> ExchangeDocument:
    """The exchange document in ``body`` (signed bytes verified at admission).

    Hardened parse (``gateway.core.xmlparse``) and schema validation; raises
    the parse and schema errors of those modules, or
    ``UnexpectedDocumentType`` for a node document.
    """
    return read_exchange_document(parse_xml(body))


def free_texts(document: ExchangeDocument) -> list[FreeText]:
    """Every free text of ``document``: questions' free text (Request,
    InformationRequest) or replies' free text (Answer) in document order,
    then the document's Note. Blank texts are left out: there is nothing to
    translate. Field ids are unique within a document (the XSD allows one
    Question or Reply per code).
    """
    found: list[FreeText] = []

    def add(field: str, value: LocalizedText | None) -> None:
        if value is not None and value.text.strip():
            found.append(FreeText(field, value.text, value.lang))

    if isinstance(document, Request | InformationRequest):
        for question in document.questions:
            add(f"Question/{question.code}", question.free_text)
    if isinstance(document, Answer):
        for reply in document.replies:
            add(f"Reply/{reply.question}", reply.free_text)
    note = getattr(document, "note", None)  # every type but Request may have one
    if isinstance(note, LocalizedText):
        add(NOTE_FIELD, note)
    return found


def clean_translation(text: str) -> tuple[str, bool]:
    """``text`` fit for a Delivery: characters XML cannot carry removed, cut
    to :data:`MAX_TEXT_CHARS`, surrounding whitespace stripped.

    Returns (cleaned text, whether it was cut). An empty result means there
    is nothing to show.
    """
    cleaned = _NOT_XML_CHARS.sub("", text).strip()
    if len(cleaned) <= MAX_TEXT_CHARS:
        return cleaned, False
    return cleaned[: MAX_TEXT_CHARS - 1].rstrip() + "\u2026", True


class _Codes(NamedTuple):
    """The codes of a document: questions, then (question, option) pairs."""

    questions: list[str]
    options: list[tuple[str, str]]


def _codes(document: ExchangeDocument) -> _Codes:
    questions: dict[str, None] = {}
    options: dict[tuple[str, str], None] = {}
    if isinstance(document, Request | InformationRequest):
        for question in document.questions:
            questions.setdefault(question.code)
    if isinstance(document, Answer):
        for reply in document.replies:
            questions.setdefault(reply.question)
            for option in reply.options:
                options.setdefault((reply.question, option))
    return _Codes(list(questions), list(options))


class _Text(NamedTuple):
    code: str
    question: str
    texts: Texts


def _catalogue_entries(
    catalogue: Catalogue | None, codes: _Codes
) -> tuple[list[_Text], list[_Text], bool]:
    """The catalogue texts of the codes: (questions, options, some code unknown)."""
    unknown = False
    questions: list[_Text] = []
    options: list[_Text] = []
    if not codes.questions and not codes.options:
        return questions, options, False
    if catalogue is None:
        return questions, options, True
    for code in codes.questions:
        question = catalogue.questions.get(code)
        if question is None:
            unknown = True
            continue
        questions.append(_Text(code, code, question.texts))
    for question_code, option_code in codes.options:
        question = catalogue.questions.get(question_code)
        option = None
        if question is not None and question.takes_option:
            option = next((o for o in question.options if o.code == option_code), None)
        if option is None:
            unknown = True
            continue
        options.append(_Text(option_code, question_code, option.texts))
    return questions, options, unknown


def renderings_for(
    catalogues: CatalogueRegistry,
    document: ExchangeDocument,
    languages: Sequence[str],
    translations: Mapping[TranslationKey, TranslationLike],
    *,
    pending: Container[TranslationKey] | None = None,
) -> tuple[Rendering, ...]:
    """One ``envelopes.Rendering`` per language of ``languages`` (duplicates dropped).

    Catalogue texts come from the version named in the document's header
    (``header.catalogue_version``); a document without codes gets renderings
    with machine translations only. ``translations`` maps
    :func:`translation_key` (SHA-256 of a free text, target language) to a
    machine translation of that text; one is used only when its source
    language is the free text's language, its target the rendering's
    language, and its engine name one the delivery XSD accepts. Free text
    already in a rendering's language needs no translation there.

    ``pending`` says which missing translations are still awaited: with
    None every missing one is; otherwise only those whose key is in it, the
    others being given up (no engine, or the engine failed).

    Status per language: ``PENDING`` when an awaited translation is missing
    (whatever else is missing: the rendering will change); else ``PARTIAL``
    when the catalogue version or a code is unknown, a text fell back to
    another language, a translation was given up or cut, or a cap of the
    delivery XSD was reached; else ``COMPLETE``.

    Raises only CATALOGUE_LANGUAGE_UNKNOWN, for a language outside the 27
    (a configuration error, never the document's fault).
    """
    targets = tuple(dict.fromkeys(check_language(lang) for lang in languages))
    version = document.header.catalogue_version
    catalogue = catalogues.get(version) if version is not None and version in catalogues else None
    codes = _codes(document)
    question_entries, option_entries, unknown = _catalogue_entries(catalogue, codes)
    if len(question_entries) > MAX_QUESTION_TEXTS or len(option_entries) > MAX_OPTION_TEXTS:
        unknown = True  # not everything fits; what does is rendered
        question_entries = question_entries[:MAX_QUESTION_TEXTS]
        option_entries = option_entries[:MAX_OPTION_TEXTS]
    texts = free_texts(document)

    renderings = []
    for lang in targets:
        partial = unknown
        question_texts = []
        for entry in question_entries:
            local = pick_text(entry.code, entry.texts, lang)
            partial = partial or local.fallback
            question_texts.append(QuestionText(entry.code, local.text))
        option_texts = []
        for entry in option_entries:
            local = pick_text(entry.code, entry.texts, lang)
            partial = partial or local.fallback
            option_texts.append(OptionText(entry.question, entry.code, local.text))

        waiting = False
        machine: list[MachineTranslation] = []
        for free in texts:
            if free.lang == lang:
                continue
            key = (free.sha256, lang)
            usable = _machine_translation(free, lang, translations.get(key))
            if usable is None:
                if pending is None or key in pending:
                    waiting = True
                else:
                    partial = True
                continue
            if len(machine) >= MAX_MACHINE_TRANSLATIONS:
                partial = True
                continue
            mt, cut = usable
            partial = partial or cut
            machine.append(mt)

        if waiting:
            status = RenderingStatus.PENDING
        elif partial:
            status = RenderingStatus.PARTIAL
        else:
            status = RenderingStatus.COMPLETE
        renderings.append(
            Rendering(
                lang=lang,
                status=status,
                catalogue_version=None if catalogue is None else catalogue.version,
                question_texts=tuple(question_texts),
                option_texts=tuple(option_texts),
                translations=tuple(machine),
            )
        )
    return tuple(renderings)


def _machine_translation(
    free: FreeText, lang: str, found: TranslationLike | None
) -> tuple[MachineTranslation, bool] | None:
    """The labelled translation of ``free`` into ``lang`` and whether its text was cut,
    or None when ``found`` is missing or unusable."""
    if found is None:
        return None
    if found.source_lang != free.lang or found.target_lang != lang:
        return None
    if not _ENGINE_RE.match(found.engine):
        return None
    text, cut = clean_translation(found.text)
    if not text:
        return None
    labelled = MachineTranslation(
        text_field=free.field,
        engine=found.engine,
        source_language=free.lang,
        target_language=lang,
        text=text,
    )
    return labelled, cut
