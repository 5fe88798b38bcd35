"""``imi-gateway audit checkpoint | peers | peer-checkpoint | timestamp`` and the checkpoint options
of ``audit export`` / ``audit verify``: an auditor proves an export against a peer-held checkpoint."""

from __future__ import annotations

import hashlib
import pathlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from gateway import cli
from gateway import config as cfg
from gateway import keystore as ks
from gateway.commands.queue import _NoReactor
from gateway.core import audit, certs
from gateway.core.audit_checkpoint import read_signed_checkpoint, timestamp_imprint
from gateway.storage.audit import append_audit_txn
from gateway.storage.audit_checkpoints import accept_peer_checkpoint_txn
from gateway.storage.db import Database
from tests.adapters.tsa import make_tsa_keys, sign_token

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> object:
    ks.clear_key_cache()
    yield
    ks.clear_key_cache()


def database(node_dir: pathlib.Path) -> Database:
    db = Database(cfg.load_config(node_dir).database.url, reactor=_NoReactor(), threads=1)
    db.migrate()
    return db


def append(node_dir: pathlib.Path, n: int, start: int = 0) -> None:
    db = database(node_dir)
    for i in range(start, start + n):
        db.run_txn_sync(
            append_audit_txn,
            at=T0 + timedelta(minutes=i),
            event=audit.Event.SUBMITTED,
            actor="auth",
            exchange_id=f"EX-{i % 2}",
            message_id=f"m-{i}",
        )
    db.stop()


def rewrite_entry_2(node_dir: pathlib.Path) -> None:
    """The operator rewrites entry 2 and re-chains every later entry (no stored hash betrays it)."""
    db = database(node_dir)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2"))
        rows = conn.execute(text("SELECT * FROM audit_log ORDER BY seq")).mappings().all()
        prev = audit.GENESIS
        for row in rows:
            e = audit.Entry(
                row["seq"], audit.parse_time(row["at"].replace(" ", "T") + "Z")
                if isinstance(row["at"], str) else row["at"],
                row["event"], row["actor"], row["exchange_id"], row["message_id"],
                row["digest"], prev,
            )  # fmt: skip
            prev = audit.entry_hash(e)
            conn.execute(
                text("UPDATE audit_log SET prev = :p, hash = :h WHERE seq = :s"),
                {"p": e.prev, "h": prev, "s": e.seq},
            )
    db.stop()


@pytest.fixture
def node(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> pathlib.Path:
    node_dir = tmp_path / "no"
    assert cli.main(["init", str(node_dir), "--country", "NO"]) == 0
    append(node_dir, 6)
    capsys.readouterr()
    return node_dir


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_an_export_is_proven_against_an_earlier_checkpoint(
    node: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cp, cert = str(tmp_path / "cp.xml"), str(node / "certs" / "signing.pem")
    assert run(capsys, "audit", "checkpoint", str(node), "-o", cp)[0] == 0
    append(node, 3, start=6)
    export = str(tmp_path / "ex.xml")
    assert run(capsys, "audit", "export", str(node), "--exchange", "EX-1",
               "--consistent-with", cp, "-o", export)[0] == 0  # fmt: skip
    status, out, err = run(capsys, "audit", "verify", export, "--cert", cert, "--checkpoint", cp)
    assert status == 0, err
    assert "consistent with the checkpoint of size 6" in out
    plain = str(tmp_path / "plain.xml")
    assert run(capsys, "audit", "export", str(node), "-o", plain)[0] == 0
    status, _, err = run(capsys, "audit", "verify", plain, "--cert", cert, "--checkpoint", cp)
    assert status == 1 and "AUDIT_CHECKPOINT_NOT_PROVEN" in err


def test_an_export_of_a_rewritten_log_fails_against_the_earlier_checkpoint(
    node: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cp, cert = str(tmp_path / "cp.xml"), str(node / "certs" / "signing.pem")
    assert run(capsys, "audit", "checkpoint", str(node), "-o", cp)[0] == 0
    rewrite_entry_2(node)
    append(node, 1, start=6)
    export = str(tmp_path / "ex.xml")
    assert run(capsys, "audit", "export", str(node), "--consistent-with", cp, "-o", export)[0] == 0
    assert run(capsys, "audit", "verify", export, "--cert", cert)[0] == 0  # fine on its own
    status, _, err = run(capsys, "audit", "verify", export, "--cert", cert, "--checkpoint", cp)
    assert status == 1 and "AUDIT_CHECKPOINT_INCONSISTENT" in err


def test_an_auditor_checks_a_peers_export_with_the_checkpoint_this_node_holds(
    node: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pt = tmp_path / "pt"
    assert cli.main(["init", str(pt), "--country", "PT"]) == 0
    append(pt, 4)
    pt_cp = tmp_path / "pt-cp.xml"
    assert run(capsys, "audit", "checkpoint", str(pt), "-o", str(pt_cp))[0] == 0
    pt_cert = ks.load_node_keys(pt).signing.certificate
    trust = certs.TrustStore.from_pem(pinned=[certs.dump_pem_certificate(pt_cert)], cas=[])
    offered = read_signed_checkpoint(pt_cp.read_bytes(), trust, now=datetime.now(UTC), node_id="PT")
    db = database(node)  # what NO's checkpoint service stores when PT offers it
    db.run_txn_sync(accept_peer_checkpoint_txn, "PT", offered, proof_from=0, proof=(),
                    token=None, now=datetime.now(UTC))  # fmt: skip
    db.stop()
    status, out, _ = run(capsys, "audit", "peers", str(node))
    assert status == 0 and out.startswith("PT: size 4 root ")

    held = str(tmp_path / "held.xml")
    assert run(capsys, "audit", "peer-checkpoint", str(node), "--peer", "PT", "-o", held)[0] == 0
    append(pt, 2, start=4)
    export = str(tmp_path / "pt-export.xml")
    assert run(capsys, "audit", "export", str(pt), "--consistent-with", held, "-o", export)[0] == 0
    status, out, err = run(capsys, "audit", "verify", export, "--cert",
                           str(pt / "certs" / "signing.pem"), "--checkpoint", held)  # fmt: skip
    assert status == 0, err

    # PT rewrites its history; its next checkpoint reaches NO and is refused as evidence.
    rewrite_entry_2(pt)
    append(pt, 1, start=6)
    forged = tmp_path / "forged.xml"
    assert run(capsys, "audit", "checkpoint", str(pt), "-o", str(forged))[0] == 0
    bad = read_signed_checkpoint(forged.read_bytes(), trust, now=datetime.now(UTC), node_id="PT")
    db = database(node)
    conflict = db.run_txn_sync(accept_peer_checkpoint_txn, "PT", bad, proof_from=4,
                               proof=(), token=None, now=datetime.now(UTC))  # fmt: skip
    db.stop()
    assert conflict is not None and conflict.code == "AUDIT_CHECKPOINT_INCONSISTENT"
    status, out, err = run(capsys, "audit", "peers", str(node))
    assert status == 1 and "AUDIT_PEER_CONFLICTS" in err
    assert "CONFLICT PT: AUDIT_CHECKPOINT_INCONSISTENT" in out and "held size 4" in out
    evidence = str(tmp_path / "evidence.xml")
    assert run(capsys, "audit", "peer-checkpoint", str(node), "--peer", "PT",
               "--conflict", "1", "-o", evidence)[0] == 0  # fmt: skip
    assert pathlib.Path(evidence).read_bytes() == forged.read_bytes()


def test_a_time_stamp_token_is_checked_offline(
    node: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.adapters.timestamping import der, rfc3161

    cp = tmp_path / "cp.xml"
    assert run(capsys, "audit", "checkpoint", str(node), "-o", str(cp))[0] == 0
    keys = make_tsa_keys()
    imprint = der.seq(der.seq(der.oid(rfc3161.SHA256), der.null()),
                      der.octets(timestamp_imprint(cp.read_bytes())))  # fmt: skip
    (tmp_path / "cp.tst").write_bytes(sign_token(keys, imprint, None, 1, datetime.now(UTC)))
    (tmp_path / "tsa.pem").write_bytes(keys.ca_pem())
    args = ("--token", str(tmp_path / "cp.tst"), "--tsa-cert", str(tmp_path / "tsa.pem"))
    status, out, err = run(capsys, "audit", "timestamp", str(cp), *args)
    assert status == 0 and out.startswith("valid: time-stamped at "), err
    other = tmp_path / "other.xml"
    other.write_bytes(cp.read_bytes() + b"\n")
    status, _, err = run(capsys, "audit", "timestamp", str(other), *args)
    assert status == 1 and "TIMESTAMP_INVALID" in err
    assert hashlib.sha256(cp.read_bytes()).digest() == timestamp_imprint(cp.read_bytes())
