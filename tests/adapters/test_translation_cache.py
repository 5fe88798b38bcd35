"""The labelled Translation value and the in-memory translation cache."""

from __future__ import annotations

import hashlib

import pytest
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from gateway.adapters.translation import (
    ITranslationCache,
    MemoryTranslationCache,
    Translation,
    UnknownLanguage,
    text_sha256,
)

ORIGINAL = "Legen har ikkje autorisasjon i Noreg."


def make(target: str = "de", text: str = ORIGINAL, source: str = "nn") -> Translation:
    return Translation(
        source_lang=source,
        target_lang=target,
        engine="libretranslate",
        text=f"translated:{target}",
        original_sha256=text_sha256(text),
    )


def test_digest_is_sha256_of_the_utf8_text() -> None:
    assert text_sha256(ORIGINAL) == hashlib.sha256(ORIGINAL.encode("utf-8")).hexdigest()


def test_translation_is_labelled_with_engine_and_language_pair_and_hides_its_text() -> None:
    translation = make()
    assert translation.machine is True
    assert translation.language_pair == "nn-de"
    assert "libretranslate" in translation.label and "nn" in translation.label
    assert "Machine translation" in translation.label
    assert "translated:de" not in repr(translation)


def test_translation_refuses_unknown_languages_and_bad_digests() -> None:
    with pytest.raises(UnknownLanguage):
        make(target="xx")
    with pytest.raises(ValueError, match="original_sha256"):
        Translation("de", "en", "none", "t", "not-a-digest")
    with pytest.raises(ValueError, match="engine"):
        Translation("de", "en", "Bad Engine", "t", text_sha256("x"))


@pytest.mark.parametrize("cache", [MemoryTranslationCache()])
def test_memory_cache_provides_the_interface(cache: MemoryTranslationCache) -> None:
    assert verifyObject(ITranslationCache, cache)


def test_cache_hits_by_digest_and_language_pair_only() -> None:
    cache = MemoryTranslationCache()
    cache.put(make("de"))
    digest = text_sha256(ORIGINAL)
    assert cache.get(digest, "nn", "de").result == make("de")
    assert cache.get(digest, "nn", "en").result is None
    assert cache.get(digest, "nb", "de").result is None
    assert cache.get(text_sha256("other"), "nn", "de").result is None


def test_cache_evicts_the_least_recently_used_entry() -> None:
    cache = MemoryTranslationCache(max_entries=2)
    digest = text_sha256(ORIGINAL)
    cache.put(make("de"))
    cache.put(make("en"))
    cache.get(digest, "nn", "de")  # de is now the most recently used
    cache.put(make("fr"))
    assert len(cache) == 2
    assert cache.get(digest, "nn", "en").result is None
    assert cache.get(digest, "nn", "de").result is not None
    assert cache.get(digest, "nn", "fr").result is not None


def test_cache_entries_expire_after_max_age_on_the_clock() -> None:
    clock = Clock()
    cache = MemoryTranslationCache(max_age=60, clock=clock)
    digest = text_sha256(ORIGINAL)
    cache.put(make("de"))
    clock.advance(59)
    assert cache.get(digest, "nn", "de").result is not None
    clock.advance(1)
    assert cache.get(digest, "nn", "de").result is None
    assert len(cache) == 0


def test_forget_removes_every_translation_of_one_original() -> None:
    cache = MemoryTranslationCache()
    cache.put(make("de"))
    cache.put(make("en"))
    cache.put(make("de", text="another text"))
    assert cache.forget(text_sha256(ORIGINAL)).result == 2
    assert len(cache) == 1
    assert cache.get(text_sha256("another text"), "nn", "de").result is not None
    assert cache.forget(text_sha256(ORIGINAL)).result == 0


def test_put_replaces_an_existing_entry() -> None:
    cache = MemoryTranslationCache()
    cache.put(make("de"))
    newer = Translation("nn", "de", "etranslation", "newer", text_sha256(ORIGINAL))
    cache.put(newer)
    assert len(cache) == 1
    assert cache.get(text_sha256(ORIGINAL), "nn", "de").result == newer
