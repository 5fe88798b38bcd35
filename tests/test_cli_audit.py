"""``imi-gateway audit export`` and ``audit verify``: a node's log exported and verified offline."""

from __future__ import annotations

import pathlib
from datetime import UTC, datetime, timedelta

import pytest

from gateway import cli
from gateway import config as cfg
from gateway import keystore as ks
from gateway.core import audit
from gateway.storage.audit import append_audit_txn
from gateway.storage.db import Database

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> object:
    ks.clear_key_cache()
    yield
    ks.clear_key_cache()


@pytest.fixture
def node(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> pathlib.Path:
    node_dir = tmp_path / "no"
    assert cli.main(["init", str(node_dir), "--country", "NO"]) == 0
    from gateway.commands.queue import _NoReactor

    db = Database(cfg.load_config(node_dir).database.url, reactor=_NoReactor(), threads=1)
    db.migrate()
    for i in range(6):
        db.run_txn_sync(
            append_audit_txn,
            at=T0 + timedelta(minutes=i),
            event=audit.Event.SUBMITTED,
            actor="NO-auth",
            exchange_id=f"EX-{i % 2}",
            message_id=f"m-{i}",
            digest=audit.document_digest(b"k", b"doc"),
        )
    db.stop()
    capsys.readouterr()
    return node_dir


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    ("selection", "span"),
    [
        ((), "6 audit entries (entries 1..6)"),
        (("--from", "2026-03-02T09:01:00Z", "--to", "2026-03-02T09:04:00Z"), "entries 2..4"),
        (("--exchange", "EX-1"), "3 audit entries (entries 2..6)"),
    ],
)
def test_an_export_verifies_offline_with_the_node_certificate(
    node: pathlib.Path, capsys: pytest.CaptureFixture[str], selection: tuple[str, ...], span: str
) -> None:
    out_file = node.parent / "audit.xml"
    status, _, err = run(capsys, "audit", "export", str(node), *selection, "-o", str(out_file))
    assert status == 0, err
    cert = node / "certs" / "signing.pem"
    status, out, err = run(capsys, "audit", "verify", str(out_file), "--cert", str(cert))
    assert status == 0, err
    assert span in out and "of node NO" in out


def test_a_tampered_export_fails_naming_the_entry(
    node: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = node.parent / "audit.xml"
    assert run(capsys, "audit", "export", str(node), "-o", str(out_file))[0] == 0
    out_file.write_bytes(out_file.read_bytes().replace(b'message="m-3"', b'message="m-9"'))
    cert = node / "certs" / "signing.pem"
    status, _, err = run(capsys, "audit", "verify", str(out_file), "--cert", str(cert))
    assert status == 1
    assert "error: AUDIT_SIGNATURE_INVALID" in err


def test_another_nodes_certificate_does_not_verify_the_export(
    node: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = node.parent / "pt"
    assert cli.main(["init", str(other), "--country", "PT"]) == 0
    out_file = node.parent / "audit.xml"
    assert run(capsys, "audit", "export", str(node), "-o", str(out_file))[0] == 0
    cert = other / "certs" / "signing.pem"
    status, _, err = run(capsys, "audit", "verify", str(out_file), "--cert", str(cert))
    assert (status, "AUDIT_SIGNATURE_INVALID" in err) == (1, True)


def test_a_row_changed_in_the_database_is_named_as_the_modified_entry(
    node: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy import update

    from gateway.commands.queue import _NoReactor
    from gateway.storage.tables import audit_log

    db = Database(cfg.load_config(node).database.url, reactor=_NoReactor(), threads=1)
    db.run_txn_sync(
        lambda conn: conn.execute(
            update(audit_log).where(audit_log.c.seq == 3).values(actor="someone-else")
        )
    )
    db.stop()
    out_file = node.parent / "audit.xml"
    assert run(capsys, "audit", "export", str(node), "-o", str(out_file))[0] == 0
    cert = node / "certs" / "signing.pem"
    status, _, err = run(capsys, "audit", "verify", str(out_file), "--cert", str(cert))
    assert status == 1
    assert "error: AUDIT_ENTRY_MODIFIED: entry 3:" in err
