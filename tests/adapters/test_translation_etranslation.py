"""The eTranslation adapter against a local fake eTranslation that calls back.

The fake sits behind Twisted's server-side HTTP Digest implementation, answers
a request id and then POSTs the form-encoded callback to the adapter's
callback resource, served on another local port.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from zope.interface.verify import verifyObject

from gateway.adapters.translation import (
    ETranslationRefused,
    ETranslationTranslator,
    ITranslator,
    Translation,
    TranslationTimeout,
    TranslationUnavailable,
    build_translator,
    text_sha256,
)
from tests.waiting import until

from .fakes import (
    FakeETranslation,
    Servers,
    digest_protected,
    fake_translation,
    post_form,
)

TEXT = "Ο γιατρός είναι εγγεγραμμένος στον ιατρικό σύλλογο της Αθήνας."
APPLICATION = "IMI-GW-NO"


@dataclass
class Setup:
    translator: ETranslationTranslator
    fake: FakeETranslation
    checker: object
    clock: Clock
    callback_base: str


def setup(servers: Servers, *, password: str = "s3cret", **settings: object) -> Setup:
    fake = FakeETranslation(servers.client)
    protected, checker = digest_protected(fake, {APPLICATION.encode(): b"s3cret"})
    root = Resource()
    root.putChild(b"etranslation", protected)
    service_url = servers.listen(root) + "/etranslation/si/translate"

    node_root = Resource()
    callback_base = servers.listen(node_root) + "/translation/etranslation"
    clock = Clock()
    translator = build_translator(
        "etranslation",
        {
            "url": service_url,
            "application": APPLICATION,
            "username": "imi-gateway",
            "password": password,
            "callback_base_url": callback_base,
            "timeout_seconds": 120,
            **settings,
        },
        reactor=reactor,
        clock=clock,
    )
    assert isinstance(translator, ETranslationTranslator)
    translation_dir = Resource()
    node_root.putChild(b"translation", translation_dir)
    translation_dir.putChild(b"etranslation", translator.callback_resource)
    servers.on_close(translator.close)
    return Setup(translator, fake, checker, clock, callback_base)


async def wait_for_submission(s: Setup) -> None:
    """Let the real network run until eTranslation has answered the submission with an id."""
    await until(lambda: s.fake.submissions and s.translator._pending and _submitted(s))


def _submitted(s: Setup) -> bool:
    return all(p.request_id is not None for p in s.translator._pending.values())


def test_the_translator_provides_the_interface(servers: Servers) -> None:
    s = setup(servers)
    assert verifyObject(ITranslator, s.translator)


@pytest_twisted.ensureDeferred
async def test_translation_arrives_through_the_authenticated_callback(servers: Servers) -> None:
    s = setup(servers)

    result = await s.translator.translate(TEXT, "el", "nb")

    assert isinstance(result, Translation)
    assert result.text == fake_translation(TEXT, "nb")
    assert (result.engine, result.source_lang, result.target_lang) == ("etranslation", "el", "nb")
    assert result.original_sha256 == text_sha256(TEXT)
    assert "etranslation" in result.label
    assert s.checker.accepted == [APPLICATION.encode()]  # Digest checked by Twisted's server side
    [submission] = s.fake.submissions
    assert submission["callerInformation"] == {
        "application": APPLICATION,
        "username": "imi-gateway",
    }
    assert submission["sourceLanguage"] == "EL"
    assert submission["targetLanguages"] == ["NB"]
    assert submission["textToTranslate"] == TEXT
    assert submission["domain"] == "GEN"
    ref = submission["externalReference"]
    for kind, url in (
        ("translated", submission["requesterCallback"]),
        ("error", submission["errorCallback"]),
    ):
        assert url.startswith(s.callback_base + f"/{ref}/")
        token = urlsplit(url).path.split("/")[-2]
        assert len(token) >= 43  # 256 bits, URL-safe base64
        assert url.endswith("/" + kind)
    assert [await c for c in s.fake.callback_calls] == [200]
    assert s.translator.pending_count == 0


@pytest_twisted.ensureDeferred
async def test_later_requests_reuse_the_digest_challenge(servers: Servers) -> None:
    s = setup(servers)
    await s.translator.translate(TEXT, "el", "nb")
    await s.translator.translate(TEXT + " 2", "el", "de")
    assert s.checker.accepted == [APPLICATION.encode()] * 2
    assert s.checker.refused == 0


@pytest_twisted.ensureDeferred
async def test_the_error_callback_fails_the_request(servers: Servers) -> None:
    s = setup(servers)
    s.fake.mode = "error"

    with pytest.raises(ETranslationRefused) as caught:
        await s.translator.translate(TEXT, "el", "nb")

    assert caught.value.code == "TRANSLATION_REFUSED"
    assert "-20028" in str(caught.value) and "Language pair not supported" in str(caught.value)
    assert isinstance(caught.value, TranslationUnavailable)
    assert [await c for c in s.fake.callback_calls] == [200]
    assert s.translator.pending_count == 0


@pytest_twisted.ensureDeferred
async def test_a_negative_answer_fails_at_once(servers: Servers) -> None:
    s = setup(servers)
    s.fake.mode = "refuse"

    with pytest.raises(ETranslationRefused, match="-20001"):
        await s.translator.translate(TEXT, "el", "nb")

    assert s.translator.pending_count == 0


@pytest_twisted.ensureDeferred
async def test_wrong_credentials_fail_without_retrying_forever(servers: Servers) -> None:
    s = setup(servers, password="wrong")

    with pytest.raises(TranslationUnavailable, match="refused the credentials"):
        await s.translator.translate(TEXT, "el", "nb")

    assert s.fake.submissions == []
    assert s.checker.refused == 1


@pytest_twisted.ensureDeferred
async def test_unknown_references_and_wrong_tokens_are_answered_404_and_ignored(
    servers: Servers,
) -> None:
    s = setup(servers)
    s.fake.mode = "silent"
    d = s.translator.translate(TEXT, "el", "nb")
    outcome: list[object] = []
    d.addBoth(outcome.append)
    await wait_for_submission(s)
    [submission] = s.fake.submissions
    good_url = submission["requesterCallback"]
    ref = submission["externalReference"]
    fields = {
        "request-id": "4711",
        "target-language": "NB",
        "translated-text": "forged",
        "external-reference": ref,
    }

    wrong_token = good_url.replace(urlsplit(good_url).path.split("/")[-2], "A" * 43)
    unknown_ref = good_url.replace(ref, "0" * 32)
    assert await post_form(servers.client, wrong_token, fields) == 404
    assert await post_form(servers.client, unknown_ref, fields) == 404
    assert await post_form(servers.client, s.callback_base + "/nothing", fields) == 404
    get = await servers.client.get(good_url)
    assert get.code == 405
    assert outcome == [] and s.translator.pending_count == 1

    fields["target-language"] = "DE"  # a callback for another language than requested
    assert await post_form(servers.client, good_url, fields) == 400
    fields["target-language"] = "NB"
    fields["request-id"] = "999"  # another request id than eTranslation answered
    assert await post_form(servers.client, good_url, fields) == 400
    assert outcome == []

    fields["request-id"] = "4711"
    assert await post_form(servers.client, good_url, fields) == 200
    [result] = outcome
    assert isinstance(result, Translation) and result.text == "forged"
    assert await post_form(servers.client, good_url, fields) == 404  # the token is single-use


@pytest_twisted.ensureDeferred
async def test_a_missing_callback_times_out_on_the_injected_clock(servers: Servers) -> None:
    s = setup(servers)
    s.fake.mode = "silent"
    d = s.translator.translate(TEXT, "el", "nb")
    outcome: list[object] = []
    d.addBoth(outcome.append)
    await wait_for_submission(s)

    s.clock.advance(119)
    assert outcome == []
    s.clock.advance(1)

    [failure] = outcome
    assert isinstance(failure, Failure) and failure.check(TranslationTimeout)
    late = {"translated-text": "too late", "target-language": "NB"}
    assert await post_form(servers.client, s.fake.submissions[0]["requesterCallback"], late) == 404


@pytest_twisted.ensureDeferred
async def test_cancelling_forgets_the_request(servers: Servers) -> None:
    s = setup(servers)
    s.fake.mode = "silent"
    d = s.translator.translate(TEXT, "el", "nb")
    d.addErrback(lambda f: f.trap(Exception))
    await wait_for_submission(s)

    d.cancel()

    assert s.translator.pending_count == 0
    assert not s.clock.getDelayedCalls()


@pytest_twisted.ensureDeferred
async def test_limits_and_language_choices_keep_text_at_home(servers: Servers) -> None:
    s = setup(servers, languages=["el", "de"], max_text_chars=20)

    assert await s.translator.translate("kurz", "el", "nb") is None  # nb not offered
    with pytest.raises(TranslationUnavailable, match="limited to 20"):
        await s.translator.translate(TEXT, "el", "de")
    assert await s.translator.translate(TEXT, "el", "el") is None

    assert s.fake.submissions == []


@pytest_twisted.ensureDeferred
async def test_a_plain_text_callback_body_is_accepted(servers: Servers) -> None:
    s = setup(servers)
    s.fake.mode = "silent"
    d = s.translator.translate(TEXT, "el", "de")
    await wait_for_submission(s)
    submission = s.fake.submissions[0]
    url = (
        submission["requesterCallback"]
        + "?target-language=DE&external-reference="
        + (submission["externalReference"])
    )

    response = await servers.client.post(
        url, data="Übersetzung".encode(), headers={b"Content-Type": [b"text/plain; charset=utf-8"]}
    )

    assert response.code == 200
    result = await d
    assert result is not None and result.text == "Übersetzung"
