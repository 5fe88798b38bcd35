"""Building translators and the service from the node's [translation] configuration."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor
from twisted.internet.task import Clock

from gateway.adapters.translation import (
    ETranslationTranslator,
    LibreTranslateTranslator,
    NoneTranslator,
    build_translation_service,
    build_translator,
)
from gateway.core.errors import ConfigurationError

ETRANSLATION = {
    "url": "https://webgate.ec.europa.eu/etranslation/si/translate",
    "application": "IMI-GW-NO",
    "username": "imi-gateway",
    "password": "pw",
    "callback_base_url": "https://gw.example.no/translation/etranslation",
}


def build(engine: str, settings: dict[str, Any]) -> Any:
    return build_translator(engine, settings, reactor=reactor, clock=Clock())


@pytest_twisted.ensureDeferred
async def test_each_engine_is_built_from_its_table() -> None:
    assert isinstance(build("none", {}), NoneTranslator)
    libre = build("libretranslate", {"url": "https://mt.example.org/", "api_key": "k"})
    assert isinstance(libre, LibreTranslateTranslator)
    etrans = build("etranslation", dict(ETRANSLATION))
    assert isinstance(etrans, ETranslationTranslator)
    assert etrans.callback_resource is not None
    await libre.close()
    await etrans.close()


@pytest.mark.parametrize(
    ("engine", "settings", "message"),
    [
        ("deepl", {}, "engine must be one of none, libretranslate, etranslation"),
        ("none", {"url": "https://x"}, "unknown setting(s) in [translation.none]: url"),
        ("libretranslate", {}, "[translation.libretranslate] url is required"),
        ("libretranslate", {"url": "ftp://x"}, "must be an https:// URL"),
        (
            "libretranslate",
            {"url": "http://mt.example.org"},
            "plain http:// to a non-loopback host",
        ),
        ("libretranslate", {"url": "https://u:p@mt.example.org"}, "must not contain credentials"),
        (
            "libretranslate",
            {"url": "https://x", "timeout_seconds": 0},
            "timeout_seconds must be at least 0.1",
        ),
        (
            "libretranslate",
            {"url": "https://x", "timeout_seconds": "30"},
            "timeout_seconds must be a number",
        ),
        (
            "libretranslate",
            {"url": "https://x", "timeout_seconds": True},
            "timeout_seconds must be a number",
        ),
        (
            "libretranslate",
            {"url": "https://x", "api_kee": "k"},
            "unknown setting(s) in [translation.libretranslate]: api_kee",
        ),
        (
            "libretranslate",
            {"url": "https://x", "language_codes": {"xx": "x"}},
            "'xx' is not an IMI language code",
        ),
        (
            "libretranslate",
            {"url": "https://x", "tls_ca_file": "/nonexistent/ca.pem"},
            "cannot read tls_ca_file",
        ),
        (
            "etranslation",
            {**ETRANSLATION, "password": None},
            "[translation.etranslation] password (or password_file) is required",
        ),
        (
            "etranslation",
            {**ETRANSLATION, "application": ""},
            "application must be a non-empty string",
        ),
        (
            "etranslation",
            {**ETRANSLATION, "callback_base_url": "http://gw.example.no/cb"},
            "callback_base_url uses plain http://",
        ),
        (
            "etranslation",
            {**ETRANSLATION, "max_text_chars": 6000},
            "max_text_chars must be at least 1 and at most 5000",
        ),
        (
            "etranslation",
            {**ETRANSLATION, "languages": ["de", "klingon"]},
            "not IMI language codes: klingon",
        ),
        (
            "etranslation",
            {**ETRANSLATION, "password_file": "/x"},
            "give password or password_file, not both",
        ),
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(
    engine: str, settings: dict[str, Any], message: str
) -> None:
    settings = {k: v for k, v in settings.items() if v is not None}
    with pytest.raises(ConfigurationError) as caught:
        build(engine, settings)
    assert message in str(caught.value)
    assert caught.value.code == "CONFIGURATION_ERROR"


@pytest_twisted.ensureDeferred
async def test_secrets_can_come_from_files_and_http_to_loopback_is_allowed(tmp_path: Path) -> None:
    secret = tmp_path / "etranslation.password"
    secret.write_text("from-file\n")
    settings = {k: v for k, v in ETRANSLATION.items() if k != "password"}
    settings |= {"password_file": str(secret), "callback_base_url": "http://127.0.0.1:8080/cb"}
    translator = build("etranslation", settings)
    assert translator._digest._password == "from-file"
    await translator.close()

    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(ConfigurationError, match="is empty"):
        build("libretranslate", {"url": "https://x", "api_key_file": str(empty)})


@pytest_twisted.ensureDeferred
async def test_insecure_http_needs_an_explicit_opt_in() -> None:
    translator = build(
        "libretranslate", {"url": "http://mt.internal:5000", "allow_insecure_http": True}
    )
    await translator.close()


@pytest_twisted.ensureDeferred
async def test_the_service_reads_its_settings_from_the_engine_table() -> None:
    service = build_translation_service(
        "libretranslate",
        {
            "url": "https://mt.example.org",
            "timeout_seconds": 12,
            "cache_entries": 5,
            "cache_max_age_seconds": 600,
            "max_concurrent": 2,
        },
        reactor=reactor,
        clock=Clock(),
    )
    assert service.engine == "libretranslate"
    assert service._timeout == 12
    assert service._semaphore.limit == 2
    assert service.cache._max_entries == 5  # type: ignore[attr-defined]
    await service.close()


def test_the_none_engine_needs_no_table() -> None:
    service = build_translation_service("none", None, reactor=reactor, clock=Clock())
    assert service.engine == "none"


@pytest.mark.parametrize(
    ("engine", "settings", "message"),
    [
        ("google", {}, "engine must be one of"),
        ("none", {"cache_entries": 0}, "[translation.none] cache_entries must be at least 1"),
        ("none", {"cach_entries": 10}, "unknown setting(s) in [translation.none]: cach_entries"),
        ("libretranslate", {"url": "https://x", "max_concurrent": 1000}, "max_concurrent must be"),
        ("libretranslate", "https://x", "[translation.libretranslate] must be a table"),
        ("libretranslate", {}, "[translation.libretranslate] url is required"),
    ],
)
def test_bad_service_settings_are_refused(engine: str, settings: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build_translation_service(engine, settings, reactor=reactor, clock=Clock())
    assert message in str(caught.value)


DOCS = Path(__file__).resolve().parents[2] / "docs" / "translation.md"


def _ca_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "docs CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest_twisted.ensureDeferred
async def test_the_documented_examples_are_accepted(tmp_path: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    examples = [tomllib.loads(b)["translation"] for b in blocks if "[translation]" in b]
    assert len(examples) >= 3
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(_ca_pem())
    for example in examples:
        engine = example["engine"]
        settings = dict(example[engine])
        for key in settings:
            if key.endswith("_file"):
                settings[key] = str(ca if key == "tls_ca_file" else secret)
        service = build_translation_service(engine, settings, reactor=reactor, clock=Clock())
        assert service.engine == engine
        await service.close()
