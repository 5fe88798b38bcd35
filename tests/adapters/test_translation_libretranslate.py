"""The LibreTranslate adapter against a local server that speaks LibreTranslate's API."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor
from twisted.internet.ssl import CertificateOptions
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from gateway.adapters.translation import (
    ITranslator,
    LibreTranslateTranslator,
    NoneTranslator,
    Translation,
    TranslationTimeout,
    TranslationUnavailable,
    build_translator,
    text_sha256,
)
from tests.waiting import until

from .fakes import FakeLibreTranslate, Servers, fake_translation

TEXT = "Die Ärztin hat ihr Diplom 2011 in Graz erhalten."


def libre(servers: Servers, url: str, clock: Clock, **settings: object) -> LibreTranslateTranslator:
    translator = build_translator(
        "libretranslate",
        {"url": url, "timeout_seconds": 5, **settings},
        reactor=reactor,
        clock=clock,
    )
    servers.on_close(translator.close)
    assert isinstance(translator, LibreTranslateTranslator)
    return translator


def test_adapters_provide_the_interface() -> None:
    assert verifyObject(ITranslator, NoneTranslator())
    translator = LibreTranslateTranslator(None, "http://127.0.0.1:1", clock=Clock())  # type: ignore[arg-type]
    assert verifyObject(ITranslator, translator)


@pytest_twisted.ensureDeferred
async def test_none_engine_keeps_only_the_original() -> None:
    assert await NoneTranslator().translate(TEXT, "de", "nb") is None


@pytest_twisted.ensureDeferred
async def test_translation_is_labelled_and_sent_as_libretranslate_expects(servers: Servers) -> None:
    fake = FakeLibreTranslate()
    translator = libre(servers, servers.listen(fake), Clock(), api_key="k-123")

    result = await translator.translate(TEXT, "de", "nb")

    assert isinstance(result, Translation)
    assert result.text == fake_translation(TEXT, "nb")
    assert result.text != TEXT
    assert (result.engine, result.source_lang, result.target_lang) == ("libretranslate", "de", "nb")
    assert result.original_sha256 == text_sha256(TEXT)
    assert result.machine
    assert fake.translate_calls == [
        {"q": TEXT, "source": "de", "target": "nb", "format": "text", "api_key": "k-123"}
    ]


@pytest_twisted.ensureDeferred
async def test_languages_are_fetched_once_and_unsupported_pairs_send_nothing(
    servers: Servers,
) -> None:
    fake = FakeLibreTranslate()
    translator = libre(servers, servers.listen(fake), Clock())

    assert await translator.translate(TEXT, "de", "nn") is None  # nn is not offered
    assert await translator.translate(TEXT, "de", "en") is not None

    assert fake.languages_calls == 1
    assert [c["target"] for c in fake.translate_calls] == ["en"]


@pytest_twisted.ensureDeferred
async def test_language_codes_map_imi_codes_to_the_server_codes(servers: Servers) -> None:
    fake = FakeLibreTranslate()
    fake.languages = [
        {"code": "de", "name": "German", "targets": ["no"]},
        {"code": "no", "name": "Norwegian", "targets": ["de"]},
    ]
    translator = libre(servers, servers.listen(fake), Clock(), language_codes={"nb": "no"})

    result = await translator.translate(TEXT, "de", "nb")

    assert result is not None and result.target_lang == "nb"
    assert fake.translate_calls[0]["target"] == "no"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("error500", "HTTP 500: Cannot translate text: engine crashed"),
        ("forbidden", "HTTP 403: Invalid API key"),
        ("notjson", "invalid JSON"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_engine_errors_fail_with_translation_unavailable(
    servers: Servers, mode: str, expected: str
) -> None:
    fake = FakeLibreTranslate()
    fake.mode = mode
    translator = libre(servers, servers.listen(fake), Clock())

    with pytest.raises(TranslationUnavailable) as caught:
        await translator.translate(TEXT, "de", "nb")

    assert caught.value.code == "TRANSLATION_UNAVAILABLE"
    assert expected in str(caught.value)
    assert TEXT not in str(caught.value)


@pytest_twisted.ensureDeferred
async def test_an_oversized_answer_is_cut_off(servers: Servers) -> None:
    fake = FakeLibreTranslate()
    fake.mode = "huge"
    translator = libre(servers, servers.listen(fake), Clock(), max_response_bytes=4096)

    with pytest.raises(TranslationUnavailable) as caught:
        await translator.translate(TEXT, "de", "nb")

    assert caught.value.code == "TRANSLATION_RESPONSE_TOO_LARGE"


@pytest_twisted.ensureDeferred
async def test_texts_over_the_limit_are_not_sent(servers: Servers) -> None:
    fake = FakeLibreTranslate()
    translator = libre(servers, servers.listen(fake), Clock(), max_text_chars=10)

    with pytest.raises(TranslationUnavailable, match="at most 10"):
        await translator.translate(TEXT, "de", "nb")

    assert fake.translate_calls == []


@pytest.mark.parametrize("mode", ["hang", "trickle"])
@pytest_twisted.ensureDeferred
async def test_a_hanging_server_times_out_on_the_injected_clock(
    servers: Servers, mode: str
) -> None:
    fake = FakeLibreTranslate()
    fake.mode = mode
    clock = Clock()
    translator = libre(servers, servers.listen(fake), clock, timeout_seconds=30)
    await translator.supported_pairs()

    d = translator.translate(TEXT, "de", "nb")
    outcome: list[object] = []
    d.addBoth(outcome.append)
    await until(lambda: fake.hung)  # the request reached the server
    clock.advance(29.9)
    assert outcome == []
    clock.advance(0.1)

    assert len(outcome) == 1
    assert isinstance(outcome[0], Failure) and outcome[0].check(TranslationTimeout)
    await until(lambda: fake.lost)  # and the client closed the connection


def _tls_server(
    tmp_path: Path, ip: str = "127.0.0.1", dns: str = "localhost"
) -> tuple[CertificateOptions, Path]:
    """A private CA and a web-server certificate for ``ip``/``dns``, as a self-hosted engine has.

    (Not gateway.core.pki's node certificate: its URN subjectAltName makes
    service_identity raise, and Twisted then skips the host-name check.)
    """
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MT test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(dns), x509.IPAddress(ipaddress.ip_address(ip))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    options = CertificateOptions(privateKey=key, certificate=cert)
    ca_file = tmp_path / "mt-ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return options, ca_file


@pytest_twisted.ensureDeferred
async def test_tls_is_verified_by_default_and_an_unknown_ca_is_refused(
    servers: Servers, tmp_path: Path
) -> None:
    options, _ = _tls_server(tmp_path)
    fake = FakeLibreTranslate()
    translator = libre(servers, servers.listen_tls(fake, options), Clock())

    with pytest.raises(TranslationUnavailable, match="could not be reached"):
        await translator.translate(TEXT, "de", "nb")

    assert fake.languages_calls == 0 and fake.translate_calls == []


@pytest_twisted.ensureDeferred
async def test_a_pinned_ca_file_lets_a_self_hosted_server_in(
    servers: Servers, tmp_path: Path
) -> None:
    options, ca_file = _tls_server(tmp_path)
    fake = FakeLibreTranslate()
    translator = libre(
        servers, servers.listen_tls(fake, options), Clock(), tls_ca_file=str(ca_file)
    )

    result = await translator.translate(TEXT, "de", "nb")

    assert result is not None and result.text == fake_translation(TEXT, "nb")


@pytest_twisted.ensureDeferred
async def test_a_pinned_ca_still_checks_the_server_name(servers: Servers, tmp_path: Path) -> None:
    options, ca_file = _tls_server(tmp_path, ip="192.0.2.7", dns="mt.example.org")
    fake = FakeLibreTranslate()
    translator = libre(
        servers, servers.listen_tls(fake, options), Clock(), tls_ca_file=str(ca_file)
    )

    with pytest.raises(TranslationUnavailable, match="could not be reached"):
        await translator.translate(TEXT, "de", "nb")

    assert fake.languages_calls == 0
