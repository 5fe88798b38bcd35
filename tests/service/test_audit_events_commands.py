"""CONFIG_CHANGED, TRUST_CHANGED and AUTHORITIES_CHANGED: the commands that change a node record it.

Each ``imi-gateway`` command that changes the configuration, the trust store
or the authority directory appends an entry (actor ``operator``, what
changed in the message field, the keyed digest of the state after the
change); commands that change nothing record nothing. The audit key is
created by ``init``, and by a node's first start when an older node
directory has none (said in a log line).
"""

from __future__ import annotations

import pathlib
import stat
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.logger import globalLogPublisher

from gateway import config as cfg
from gateway import keystore as ks
from gateway.commands.queue import _NoReactor
from gateway.core.audit import Entry
from gateway.node import build_node
from gateway.storage.audit import audit_log_txn
from gateway.storage.db import Database
from tests.test_cli_authorities import ADD_HELSEDIR, run


def entries(node_dir: pathlib.Path) -> list[Entry]:
    db = Database(cfg.load_config(node_dir).database.url, reactor=_NoReactor(), threads=1)
    try:
        db.migrate()
        found: list[Entry] = db.run_txn_sync(audit_log_txn)
        return found
    finally:
        db.stop()


def changes(node_dir: pathlib.Path) -> list[tuple[str, str, str]]:
    return [(e.event, e.actor, e.message_id) for e in entries(node_dir)]


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> Any:
    ks.clear_key_cache()
    yield
    ks.clear_key_cache()


def test_trust_configuration_and_authority_commands_each_record_their_change(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no, pt = tmp_path / "no", tmp_path / "pt"
    for node, country in ((no, "NO"), (pt, "PT")):
        assert run(capsys, "init", str(node), "--country", country)[0] == 0
    assert changes(no) == []

    handover = tmp_path / "handover"
    status, _, err = run(
        capsys, "keys", "issue-national", str(no), "NO-HELSEDIR", "--out", str(handover)
    )
    assert status == 0, err
    assert changes(no) == [
        ("TRUST_CHANGED", "operator", "NO-HELSEDIR"),
        ("CONFIG_CHANGED", "operator", "NO-HELSEDIR"),  # registered in gateway.toml
    ]
    trust_entry, config_entry = entries(no)
    key = ks.load_audit_key(no)
    assert trust_entry.digest == key.digest(ks.trust_listing(ks.load_trust(no)))
    assert config_entry.digest == key.digest((no / "gateway.toml").read_bytes())

    bundle = tmp_path / "pt.json"
    assert run(capsys, "keys", "export", str(pt), "-o", str(bundle))[0] == 0
    assert run(capsys, "keys", "import-peer", str(no), str(bundle))[0] == 0
    assert run(capsys, "keys", "import-peer", str(no), str(bundle))[0] == 0  # unchanged
    assert changes(no)[2:] == [
        ("TRUST_CHANGED", "operator", "PT"),
        ("CONFIG_CHANGED", "operator", "PT"),
    ]

    assert run(capsys, "authorities", "add", str(no), "NO-HELSEDIR", *ADD_HELSEDIR)[0] == 0
    status, _, err = run(
        capsys, "authorities", "update", str(no), "NO-HELSEDIR", "--city", "Bergen"
    )
    assert status == 0, err
    assert run(capsys, "keys", "revoke", str(no), "NO-HELSEDIR")[0] == 0
    assert run(capsys, "authorities", "remove", str(no), "NO-HELSEDIR")[0] == 0
    assert changes(no)[4:] == [
        ("AUTHORITIES_CHANGED", "operator", "NO-HELSEDIR"),
        ("AUTHORITIES_CHANGED", "operator", "NO-HELSEDIR"),
        ("TRUST_CHANGED", "operator", "NO-HELSEDIR"),
        ("AUTHORITIES_CHANGED", "operator", "NO-HELSEDIR"),
    ]
    # Read-only commands record nothing; the log verifies.
    count = len(entries(no))
    assert run(capsys, "keys", "show", str(no))[0] == 0
    assert run(capsys, "authorities", "list", str(no))[0] == 0
    assert len(entries(no)) == count
    export = str(tmp_path / "audit.xml")
    assert run(capsys, "audit", "export", str(no), "-o", export)[0] == 0
    status, out, _ = run(capsys, "audit", "verify", export, "--cert", str(no / "certs/signing.pem"))
    assert status == 0 and f"valid: {count} audit entries" in out


def test_a_node_directory_without_an_audit_key_gets_one_at_its_first_start(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = tmp_path / "no"
    assert run(capsys, "init", str(node), "--country", "NO")[0] == 0
    path = ks.audit_key_path(node)
    path.unlink()  # a node directory made before the audit log
    logged: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        logged.append(str(event.get("log_format", "")))

    globalLogPublisher.addObserver(observe)
    try:
        _service, parts = build_node(node, reactor)
        parts.db.stop()
    finally:
        globalLogPublisher.removeObserver(observe)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    assert any("Created the audit key" in line for line in logged)
    key, created = ks.ensure_audit_key(node)
    assert created is False and key == ks.load_audit_key(node)  # once, then loaded
    assert "secret" not in repr(key) and path.read_bytes().hex() not in repr(key)


def test_a_hand_edit_of_the_configuration_or_trust_is_recorded_at_the_next_start(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = tmp_path / "no"
    assert run(capsys, "init", str(node), "--country", "NO")[0] == 0

    def start() -> list[tuple[str, str, str]]:
        _service, parts = build_node(node, reactor)
        parts.db.stop()
        return [c for c in changes(node) if c[1] == "node:NO"]

    first = start()  # the first start records what it runs with
    assert first == [
        ("CONFIG_CHANGED", "node:NO", "gateway.toml at start"),
        ("TRUST_CHANGED", "node:NO", "trust at start"),
    ]
    assert start() == first  # nothing changed: nothing recorded
    config = ks.node_paths(node).config
    config.write_text(config.read_text() + "\n# edited by hand\n")
    assert start() == [*first, ("CONFIG_CHANGED", "node:NO", "gateway.toml at start")]
    edited = start()
    # A command records its own change; the next start finds it recorded already.
    handover = str(tmp_path / "handover")
    assert (
        run(capsys, "keys", "issue-national", str(node), "NO-HELSEDIR", "--out", handover)[0] == 0
    )
    assert start() == edited
