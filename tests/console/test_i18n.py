"""The console's interface languages: complete catalogues, and the choice of language."""

from __future__ import annotations

from gateway.console.translate import LANGUAGES, Translator, catalogue, negotiate


def _fields(text: str) -> set[str]:
    return {part.split("}")[0] for part in text.split("{")[1:]}


def test_every_catalogue_has_exactly_the_english_keys_and_fields() -> None:
    english = catalogue("en")
    for lang in LANGUAGES:
        messages = catalogue(lang)
        assert set(messages) == set(english), lang
        for key, text in messages.items():
            assert _fields(text) == _fields(english[key]), key


def test_the_language_is_the_users_setting_else_accept_language_else_english() -> None:
    assert negotiate("nb-NO,nb;q=0.9,en;q=0.8") == "nb"
    assert negotiate("no") == "nb"
    assert negotiate("de-DE,de;q=0.9") == "en"
    assert negotiate("en;q=0.5,nb;q=0.9") == "nb"
    assert negotiate("nb", preferred="en") == "en"
    assert negotiate(None) == "en"
    assert Translator("nb")("flash.retried", n=2) == "2 døde brev lagt i kø på nytt."
    assert Translator("xx")("nav.users") == "Users"
