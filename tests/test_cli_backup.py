"""``imi-gateway backup`` / ``restore``: what a backup holds, and the refusals that keep it safe."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from gateway import cli


@pytest.fixture(scope="module")
def backed_up(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("backup")
    node = base / "node-no"
    assert cli.main(["init", str(node), "--country", "NO"]) == 0
    assert cli.main(["db", "upgrade", str(node)]) == 0
    (node / "gateway.lock").touch()  # a running node's lock and ports are not state
    (node / "ports.json").write_text("{}")
    dest = base / "backup"
    assert cli.main(["backup", str(node), str(dest)]) == 0
    return node, dest


def test_a_backup_holds_config_keys_kek_trust_and_the_database_privately(
    backed_up: tuple[Path, Path],
) -> None:
    _node, dest = backed_up
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    files = json.loads((dest / "backup.json").read_text())["files"]
    for name in (
        "gateway.toml",
        "keys/data.kek",
        "keys/signing.key",
        "certs/tls.pem",
        "revoked.txt",
    ):
        assert f"node/{name}" in files
    assert "database.sqlite3" in files
    assert not [f for f in files if f.endswith(("gateway.lock", "ports.json", ".sqlite3-wal"))]


def test_restore_checks_digests_and_refuses_a_non_empty_target(
    backed_up: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node, dest = backed_up
    assert cli.main(["restore", str(dest), str(node)]) == 3
    assert "RESTORE_TARGET_NOT_EMPTY" in capsys.readouterr().err
    assert cli.main(["backup", str(node), str(dest)]) == 3
    assert "BACKUP_DESTINATION_EXISTS" in capsys.readouterr().err

    target = tmp_path / "restored"
    assert cli.main(["restore", str(dest), str(target)]) == 0
    assert (target / "keys" / "data.kek").read_bytes() == (node / "keys" / "data.kek").read_bytes()
    assert cli.main(["db", "status", str(target)]) == 0  # the database came back, migrated

    altered = tmp_path / "altered"
    shutil.copytree(dest, altered)
    (altered / "node" / "gateway.toml").write_text('[node]\nid = "PT"\n')
    assert cli.main(["restore", str(altered), str(tmp_path / "other")]) == 3
    assert "BACKUP_INVALID: node/gateway.toml: its SHA-256 differs" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
