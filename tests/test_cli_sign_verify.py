"""``imi-gateway sign`` and ``imi-gateway verify``, and the examples of docs/signatures.md."""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.core import certs, pki
from tests.conftest import require_tool
from tests.vectors.hostile import document

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "signatures.md"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A node CA, national-system keys (EC and RSA) and a stranger, in a temp dir."""
    directory = tmp_path_factory.mktemp("keys")
    now = datetime.now(UTC)
    ca = pki.make_ca("NO", now=now)
    other_ca = pki.make_ca("SE", now=now)
    issued = {
        "ns": pki.issue_national_system(ca, "NO-HELSEDIR", now=now),
        "rsa": pki.issue_national_system(ca, "NO-HELSEDIR", now=now, kind="rsa"),
        "stranger": pki.issue_national_system(other_ca, "SE-UHR", now=now),
    }
    (directory / "node-ca.pem").write_bytes(certs.dump_pem_certificate(ca.certificate))
    for name, pair in issued.items():
        key = directory / f"{name}-key.pem"
        key.write_bytes(certs.dump_pem_private_key(pair.key))
        key.chmod(0o600)
        (directory / f"{name}-cert.pem").write_bytes(certs.dump_pem_certificate(pair.certificate))
    encrypted = directory / "ns-key-encrypted.pem"
    encrypted.write_bytes(certs.dump_pem_private_key(issued["ns"].key, b"correct horse"))
    (directory / "password.txt").write_bytes(b"correct horse\n")
    (directory / "request.xml").write_bytes(document("request.xml"))
    (directory / "invalid.xml").write_bytes(document("request-schema-invalid.xml"))
    return directory


def run(*argv: str | Path) -> int:
    return main([str(a) for a in argv])


def sign(keys: Path, source: str = "request.xml", out: str = "signed.xml", *extra: str) -> Path:
    target = keys / out
    assert (
        run(
            "sign",
            keys / source,
            "--key",
            keys / "ns-key.pem",
            "--cert",
            keys / "ns-cert.pem",
            "-o",
            target,
            *extra,
        )
        == 0
    )
    return target


def fingerprint_of(keys: Path, name: str) -> str:
    return certs.fingerprint(certs.load_pem_certificate((keys / f"{name}-cert.pem").read_bytes()))


def test_sign_then_verify_against_the_ca(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    signed = sign(keys)
    capsys.readouterr()
    assert run("verify", signed, "--ca", keys / "node-ca.pem") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "valid: Request signed by authority NO-HELSEDIR"
    assert f"certificate sha256: {fingerprint_of(keys, 'ns')}" in out
    import hashlib

    assert f"document sha256:    {hashlib.sha256(signed.read_bytes()).hexdigest()}" in out


def test_verify_json_reports_type_identity_fingerprint_and_digest(
    keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signed = sign(keys)
    capsys.readouterr()
    assert run("verify", signed, "--cert", keys / "ns-cert.pem", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is True
    assert report["document_type"] == "Request"
    assert report["schema_validated"] is True
    assert report["signer"]["authority_id"] == "NO-HELSEDIR"
    assert report["signer"]["node_id"] is None
    assert report["signer"]["certificate_sha256"] == fingerprint_of(keys, "ns")
    assert len(report["sha256"]) == 64


def test_tampered_document_exits_1_with_the_code(
    keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = keys / "tampered.xml"
    tampered.write_bytes(sign(keys).read_bytes().replace(b"PT-OMD", b"PT-OMX"))
    capsys.readouterr()
    assert run("verify", tampered, "--ca", keys / "node-ca.pem") == 1
    assert capsys.readouterr().err.startswith("error: SIGNATURE_DIGEST_MISMATCH: ")
    assert run("verify", tampered, "--ca", keys / "node-ca.pem", "--json") == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {
        "valid": False,
        "error": {
            "code": "SIGNATURE_DIGEST_MISMATCH",
            "message": "the signed content does not match the signature's digest",
        },
    }
    assert "SIGNATURE_DIGEST_MISMATCH" in captured.err


def test_signer_of_another_ca_or_other_pinned_cert_is_untrusted(
    keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signed = sign(keys)
    assert run("verify", signed, "--cert", keys / "stranger-cert.pem") == 1
    assert "CERTIFICATE_UNTRUSTED" in capsys.readouterr().err
    stranger = keys / "stranger.xml"
    assert (
        run(
            "sign",
            keys / "request.xml",
            "--key",
            keys / "stranger-key.pem",
            "--cert",
            keys / "stranger-cert.pem",
            "-o",
            stranger,
        )
        == 0
    )
    assert run("verify", stranger, "--ca", keys / "node-ca.pem") == 1
    assert "CERTIFICATE_UNTRUSTED" in capsys.readouterr().err


def test_revoked_fingerprint_is_refused(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    signed = sign(keys)
    fp = fingerprint_of(keys, "ns").upper()
    assert run("verify", signed, "--ca", keys / "node-ca.pem", "--revoked", fp) == 1
    assert "CERTIFICATE_REVOKED" in capsys.readouterr().err


def test_malformed_revoked_fingerprint_is_a_usage_error(keys: Path) -> None:
    with pytest.raises(SystemExit) as info:
        run("verify", keys / "request.xml", "--ca", keys / "node-ca.pem", "--revoked", "abc")
    assert info.value.code == 2


def test_verify_without_any_trust_is_a_usage_error(
    keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        run("verify", sign(keys))
    assert info.value.code == 2
    assert "--cert" in capsys.readouterr().err


def test_schema_is_checked_unless_no_schema(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    signed = sign(keys, "invalid.xml", "invalid.signed.xml")
    capsys.readouterr()
    assert run("verify", signed, "--ca", keys / "node-ca.pem") == 1
    # The line number is the sender's: QuestionSet is missing before line 12.
    assert capsys.readouterr().err.startswith("error: SCHEMA_INVALID: line 12: ")
    assert run("verify", signed, "--ca", keys / "node-ca.pem", "--no-schema", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["schema_validated"] is False
    assert report["document_type"] == "Request"


def test_verify_at_another_time(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    signed = sign(keys)
    before = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert run("verify", signed, "--ca", keys / "node-ca.pem", "--at", before) == 1
    assert "CERTIFICATE_NOT_YET_VALID" in capsys.readouterr().err
    later = (datetime.now(UTC) + timedelta(days=3650)).isoformat()
    assert run("verify", signed, "--ca", keys / "node-ca.pem", "--at", later) == 1
    assert "CERTIFICATE_EXPIRED" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run("verify", signed, "--ca", keys / "node-ca.pem", "--at", "2026-03-02T09:30:00")


@pytest.mark.parametrize("engine", ["fast", "signxml"])
def test_both_engines_from_the_command_line(keys: Path, engine: str) -> None:
    signed = sign(keys, "request.xml", f"signed-{engine}.xml", "--engine", engine)
    assert run("verify", signed, "--ca", keys / "node-ca.pem", "--engine", engine) == 0


def test_rsa_key_signs_too(keys: Path) -> None:
    out = keys / "rsa.signed.xml"
    assert (
        run(
            "sign",
            keys / "request.xml",
            "--key",
            keys / "rsa-key.pem",
            "--cert",
            keys / "rsa-cert.pem",
            "-o",
            out,
        )
        == 0
    )
    assert b"rsa-sha256" in out.read_bytes()
    assert run("verify", out, "--ca", keys / "node-ca.pem") == 0


def test_sign_writes_to_stdout_and_reads_stdin(
    keys: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(document("request.xml"))))
    assert run("sign", "-", "--key", keys / "ns-key.pem", "--cert", keys / "ns-cert.pem") == 0
    signed = capsysbinary.readouterr().out
    assert signed.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(signed)))
    assert run("verify", "-", "--ca", keys / "node-ca.pem") == 0


def test_encrypted_key_needs_its_password(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "sign",
        keys / "request.xml",
        "--key",
        keys / "ns-key-encrypted.pem",
        "--cert",
        keys / "ns-cert.pem",
        "-o",
        keys / "enc.xml",
    ]
    assert run(*args) == 3
    assert "KEY_UNREADABLE" in capsys.readouterr().err
    assert run(*args, "--password-file", keys / "password.txt") == 0


def test_unreadable_files_exit_3(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--cert", keys / "ns-cert.pem"]
    assert run("sign", keys / "request.xml", "--key", keys / "missing.pem", *base) == 3
    assert "IO_ERROR" in capsys.readouterr().err
    assert run("sign", keys / "request.xml", "--key", keys / "ns-cert.pem", *base) == 3
    assert "KEY_UNREADABLE" in capsys.readouterr().err
    assert run("sign", keys / "missing.xml", "--key", keys / "ns-key.pem", *base) == 3
    assert run("verify", keys / "request.xml", "--ca", keys / "ns-key.pem") == 3
    assert "CERTIFICATE_UNREADABLE" in capsys.readouterr().err
    assert run("verify", keys / "missing.xml", "--ca", keys / "node-ca.pem") == 3


def test_key_of_another_certificate_exits_3(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run(
            "sign",
            keys / "request.xml",
            "--key",
            keys / "rsa-key.pem",
            "--cert",
            keys / "ns-cert.pem",
        )
        == 3
    )
    assert "KEY_CERTIFICATE_MISMATCH" in capsys.readouterr().err


def test_unsignable_documents_exit_1(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doctype = keys / "doctype.xml"
    doctype.write_bytes(b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>')
    key = ["--key", keys / "ns-key.pem", "--cert", keys / "ns-cert.pem"]
    assert run("sign", doctype, *key) == 1
    assert "XML_FORBIDDEN_CONSTRUCT" in capsys.readouterr().err
    assert run("sign", sign(keys), *key) == 1
    assert "SIGNATURE_STRUCTURE" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["sign", "verify"])
def test_help_documents_the_exit_statuses(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        run(command, "--help")
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "exit status:" in text
    for status in ("0 ", "1 ", "3 "):
        assert f"\n  {status}" in text


def test_python_m_gateway_signs_and_verifies(keys: Path) -> None:
    out = keys / "subprocess.xml"
    signed = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "sign",
            str(keys / "request.xml"),
            "--key",
            str(keys / "ns-key.pem"),
            "--cert",
            str(keys / "ns-cert.pem"),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert signed.returncode == 0, signed.stderr
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "verify",
            str(out),
            "--ca",
            str(keys / "node-ca.pem"),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["signer"]["authority_id"] == "NO-HELSEDIR"
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "verify",
            str(keys / "request.xml"),
            "--ca",
            str(keys / "node-ca.pem"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: SIGNATURE_MISSING: ")


# --- docs/signatures.md ---------------------------------------------------------------


def doc_blocks() -> list[tuple[str, str, str]]:
    """(marker, language, body) for each fenced block preceded by an HTML comment marker."""
    text = DOC.read_text()
    pattern = re.compile(r"<!-- (.+?) -->\n```(\w+)\n(.*?)\n```", re.DOTALL)
    return [(m.group(1), m.group(2), m.group(3)) for m in pattern.finditer(text)]


def test_documented_examples_run_as_written(keys: Path, tmp_path: Path) -> None:
    for name in ("ns-key.pem", "ns-cert.pem", "node-ca.pem"):
        (tmp_path / name).write_bytes((keys / name).read_bytes())
    blocks = doc_blocks()
    assert {m for m, _, _ in blocks} >= {"file: request.xml", "file: request.template.xml", "run"}
    commands = 0
    for marker, _, body in blocks:
        if marker.startswith("file: "):
            (tmp_path / marker.removeprefix("file: ")).write_text(body + "\n")
            continue
        assert marker == "run"
        for line in body.splitlines():
            assert line.startswith("$ "), line
            argv = shlex.split(line[2:])
            if argv[0] == "imi-gateway":
                argv = [sys.executable, "-m", "gateway", *argv[1:]]
            else:
                argv[0] = require_tool(argv[0])
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                cwd=tmp_path,
                env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            )
            assert result.returncode == 0, (line, result.stdout, result.stderr)
            if argv[3:4] == ["verify"] and "--json" not in argv:
                assert result.stdout.startswith("valid: Request signed by authority NO-HELSEDIR")
            commands += 1
    assert commands >= 6


def test_documented_output_matches_the_real_output(
    keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = DOC.read_text()
    example = text.split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    signed = sign(keys)
    capsys.readouterr()
    assert run("verify", signed, "--ca", keys / "node-ca.pem") == 0
    real = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in real] == [line.split(":")[0] for line in example]
    assert real[:3] == example[:3]


def test_documented_codes_exist() -> None:
    from gateway.commands.errors import all_error_classes

    codes = {cls.code for cls in all_error_classes()}
    documented = set(re.findall(r"`([A-Z]+_[A-Z_]+[A-Z])`", DOC.read_text()))
    assert documented <= codes, documented - codes
    from tests.vectors.hostile import all_cases

    assert {c.code for c in all_cases()} <= documented
