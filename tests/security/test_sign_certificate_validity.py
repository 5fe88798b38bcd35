"""``imi-gateway sign`` refuses a certificate outside its validity period (issue 7, finding 9)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.core import certs, pki
from gateway.core.signing import verify
from tests.vectors.hostile import document


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keys whose certificates expired yesterday, start next week, and are valid now."""
    directory = tmp_path_factory.mktemp("keys")
    now = datetime.now(UTC)
    ca = pki.make_ca("NO", now=now - timedelta(days=30))
    issued = {
        "expired": pki.issue_national_system(
            ca, "NO-HELSEDIR", now=now - timedelta(days=10), days=9
        ),
        "future": pki.issue_national_system(ca, "NO-HELSEDIR", now=now + timedelta(days=7)),
        "valid": pki.issue_national_system(ca, "NO-HELSEDIR", now=now),
    }
    for name, pair in issued.items():
        key = directory / f"{name}-key.pem"
        key.write_bytes(certs.dump_pem_private_key(pair.key))
        key.chmod(0o600)
        (directory / f"{name}-cert.pem").write_bytes(certs.dump_pem_certificate(pair.certificate))
    (directory / "request.xml").write_bytes(document("request.xml"))
    return directory


def sign(keys: Path, name: str, *extra: str) -> int:
    argv = ["sign", keys / "request.xml", "--key", keys / f"{name}-key.pem"]
    argv += ["--cert", keys / f"{name}-cert.pem", "-o", keys / f"{name}.xml", *extra]
    return main([str(a) for a in argv])


@pytest.mark.parametrize(
    ("name", "code"),
    [("expired", "CERTIFICATE_EXPIRED"), ("future", "CERTIFICATE_NOT_YET_VALID")],
)
def test_sign_refuses_a_certificate_outside_its_validity(
    keys: Path, name: str, code: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sign(keys, name) == 1
    assert capsys.readouterr().err.startswith(f"error: {code}: the signing certificate ")
    assert not (keys / f"{name}.xml").exists()


@pytest.mark.parametrize("name", ["expired", "future"])
def test_sign_with_override_signs_with_an_invalid_certificate(keys: Path, name: str) -> None:
    assert sign(keys, name, "--allow-invalid-certificate") == 0
    signed = (keys / f"{name}.xml").read_bytes()
    pinned = certs.load_pem_certificate((keys / f"{name}-cert.pem").read_bytes())
    # The signature is made; a verifier still refuses it for the certificate's validity.
    with pytest.raises(certs.CertificateRefused):
        verify(signed, certs.TrustStore(pinned=(pinned,)), now=datetime.now(UTC))


def test_sign_with_a_valid_certificate_needs_no_override(keys: Path) -> None:
    assert sign(keys, "valid") == 0
    assert (keys / "valid.xml").read_bytes().count(b"SignatureValue") == 2
