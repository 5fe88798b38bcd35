"""The RFC 3161 adapter against a local TSA built with ``cryptography``; OpenSSL as the oracle."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor

from gateway.adapters.timestamping import (
    TimestampInvalid,
    TimestampRefused,
    TimestampUnavailable,
    TSAClient,
    check_tsa_url,
    der,
    rfc3161,
    verify_token,
)
from gateway.core.errors import ConfigurationError
from tests.adapters.tsa import LocalTSA, TSAKeys, make_tsa_keys, serve_tsa, sign_token

IMPRINT = hashlib.sha256(b"a signed checkpoint").digest()


@pytest.fixture(scope="module")
def keys() -> TSAKeys:
    return make_tsa_keys()


@pytest_twisted.async_yield_fixture
async def tsa(keys: TSAKeys) -> AsyncIterator[tuple[LocalTSA, str]]:
    local = LocalTSA(keys)
    url, port = serve_tsa(reactor, local)
    yield local, url
    await port.stopListening()


def client(url: str, tmp_path: Path, keys: TSAKeys | None) -> TSAClient:
    ca_file = None
    if keys is not None:
        ca_file = tmp_path / "tsa-ca.pem"
        ca_file.write_bytes(keys.ca_pem())
    return TSAClient(
        reactor, url, signer_ca_file=str(ca_file) if ca_file else None, timeout_seconds=5
    )


@pytest_twisted.ensureDeferred
async def test_the_client_gets_a_token_that_verifies_here_and_with_openssl(
    tsa: tuple[LocalTSA, str], keys: TSAKeys, tmp_path: Path
) -> None:
    _, url = tsa
    tsa_client = client(url, tmp_path, keys)
    try:
        token = await tsa_client.timestamp(IMPRINT)
    finally:
        await tsa_client.close()
    info = verify_token(token, IMPRINT, pinned=keys.ca)
    assert info.policy == "1.3.6.1.4.1.99999.1" and info.signer == keys.certificate
    (tmp_path / "token.der").write_bytes(token)
    (tmp_path / "ca.pem").write_bytes(keys.ca_pem())
    result = subprocess.run(
        ["openssl", "ts", "-verify", "-digest", IMPRINT.hex(), "-in", "token.der", "-token_in",
         "-CAfile", "ca.pem"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "Verification: OK" in result.stdout, result.stderr


def test_openssl_reads_the_request() -> None:
    request = rfc3161.request(IMPRINT, 12345)
    result = subprocess.run(
        ["openssl", "ts", "-query", "-in", "/dev/stdin", "-text"],
        input=request, capture_output=True, check=False,
    )  # fmt: skip
    text = result.stdout.decode()
    assert result.returncode == 0 and "sha256" in text and "Certificate required: yes" in text
    assert IMPRINT.hex()[:8] in text.replace(" ", "").replace("-", "").lower()


def test_a_token_is_refused_for_another_imprint_nonce_signer_or_a_changed_byte(
    keys: TSAKeys,
) -> None:
    from datetime import UTC, datetime

    imprint_el = der.seq(der.seq(der.oid(rfc3161.SHA256), der.null()), der.octets(IMPRINT))
    token = sign_token(keys, imprint_el, 7, 1, datetime.now(UTC))
    verify_token(token, IMPRINT, pinned=keys.ca, nonce=7)
    verify_token(token, IMPRINT, pinned=keys.certificate)  # the TSA certificate itself pinned
    with pytest.raises(TimestampInvalid):
        verify_token(token, hashlib.sha256(b"other").digest(), pinned=keys.ca)
    with pytest.raises(TimestampInvalid):
        verify_token(token, IMPRINT, pinned=keys.ca, nonce=8)
    with pytest.raises(TimestampInvalid):
        verify_token(token, IMPRINT, pinned=make_tsa_keys().ca)
    tst_at = token.index(IMPRINT)
    changed = token[: tst_at + 3] + bytes([token[tst_at + 3] ^ 1]) + token[tst_at + 4 :]
    with pytest.raises(TimestampInvalid):
        verify_token(changed, IMPRINT, pinned=keys.ca)
    with pytest.raises(TimestampInvalid):
        verify_token(token[:-5], IMPRINT, pinned=keys.ca)
    not_for_stamping = make_tsa_keys(time_stamping=False)
    with pytest.raises(TimestampInvalid):
        verify_token(
            sign_token(not_for_stamping, imprint_el, None, 1, datetime.now(UTC)),
            IMPRINT,
            pinned=not_for_stamping.ca,
        )


@pytest_twisted.ensureDeferred
async def test_a_tsa_that_is_down_refuses_or_is_unpinned_fails_with_a_code(
    tsa: tuple[LocalTSA, str], keys: TSAKeys, tmp_path: Path
) -> None:
    local, url = tsa
    tsa_client = client(url, tmp_path, keys)
    (tmp_path / "other").mkdir()
    stranger = client(url, tmp_path / "other", make_tsa_keys())
    try:
        local.down = True
        with pytest.raises(TimestampUnavailable):
            await tsa_client.timestamp(IMPRINT)
        local.down, local.status = False, 2
        with pytest.raises(TimestampRefused):
            await tsa_client.timestamp(IMPRINT)
        local.status = 0
        with pytest.raises(TimestampInvalid):
            await stranger.timestamp(IMPRINT)
    finally:
        await tsa_client.close()
        await stranger.close()
    nobody = client("http://127.0.0.1:1/tsa", tmp_path, None)
    with pytest.raises(TimestampUnavailable):
        await nobody.timestamp(IMPRINT)
    await nobody.close()


def test_a_tsa_url_must_be_https_or_loopback() -> None:
    assert check_tsa_url("https://tsa.example.org/tsr")
    assert check_tsa_url("http://127.0.0.1:8080/")
    with pytest.raises(ConfigurationError):
        check_tsa_url("http://tsa.example.org/")
