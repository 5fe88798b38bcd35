"""``imi-gateway users``: the first operator from the command line, never a password argument."""

from __future__ import annotations

from pathlib import Path

from gateway.storage.audit import audit_log_txn
from gateway.storage.db import Database
from gateway.testbed import setup_nodes
from tests.console.bed import cli


def test_users_add_list_set_password_and_disable_are_audited(tmp_path: Path) -> None:
    node_dir = setup_nodes(tmp_path, {"NO": ["NO-HELSEDIR"]})["NO"].node_dir
    secret = tmp_path / "olga.pw"
    secret.write_text("a-long-enough-password\n")
    added = cli("users", "add", str(node_dir), "olga", "--password-file", str(secret))
    assert added.returncode == 0, added.stderr
    again = cli("users", "add", str(node_dir), "olga", "--password-file", str(secret))
    assert again.returncode == 1 and "error: CONSOLE_USER_EXISTS" in again.stderr
    short = cli("users", "add", str(node_dir), "ada", "--role", "auditor", stdin="short\n")
    assert short.returncode == 1 and "CONSOLE_PASSWORD_TOO_WEAK" in short.stderr
    coordinator = cli(
        "users", "add", str(node_dir), "kari", "--role", "coordinator", stdin="x" * 20 + "\n"
    )
    assert coordinator.returncode == 2 and "--coordinator" in coordinator.stderr
    assert cli("users", "disable", str(node_dir), "olga").returncode == 0
    listing = cli("users", "list", str(node_dir))
    assert listing.stdout.split() == ["olga", "operator", "disabled", "password"]
    assert "argon2" not in listing.stdout
    assert (
        cli(
            "users", "set-password", str(node_dir), "olga", stdin="another-long-password\n"
        ).returncode
        == 0
    )
    assert "active" in cli("users", "list", str(node_dir)).stdout
    assert "--password" not in cli("users", "add", "--help").stdout.replace("--password-file", "")

    db = Database(f"sqlite:///{node_dir / 'gateway.sqlite3'}", reactor=None, threads=1)
    try:
        subjects = [
            e.message_id for e in db.run_txn_sync(audit_log_txn) if e.event == "CONSOLE_CHANGE"
        ]
    finally:
        db.engine.dispose()
    assert subjects == ["user-added:olga:operator", "user-disabled:olga", "user-password:olga"]


def test_a_coordinator_user_needs_a_registered_coordinator_and_may_get_a_console_key(
    tmp_path: Path,
) -> None:
    node_dir = setup_nodes(tmp_path, {"NO": ["NO-HELSEDIR"]})["NO"].node_dir
    password = "coordinator-password-1\n"
    unknown = cli(
        "users", "add", str(node_dir), "kari", "--role", "coordinator",
        "--coordinator", "NO-KOORDINATOR", stdin=password,
    )  # fmt: skip
    assert unknown.returncode == 1
    assert "error: COORDINATOR_NOT_REGISTERED" in unknown.stderr
    assert "kari" not in cli("users", "list", str(node_dir)).stdout
    registered = cli(
        "coordinators", "add", str(node_dir), "NO-KOORDINATOR", "--name", "Koordinator",
        "--national", "--out", str(tmp_path / "coordinator"),
    )  # fmt: skip
    assert registered.returncode == 0, registered.stderr
    operator_key = cli(
        "users", "add", str(node_dir), "olga", "--console-key", stdin="operator-password-1\n"
    )
    assert operator_key.returncode == 2 and "--console-key" in operator_key.stderr
    added = cli(
        "users", "add", str(node_dir), "kari", "--role", "coordinator",
        "--coordinator", "NO-KOORDINATOR", "--console-key", stdin=password,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "Issued the console key of kari for coordinator NO-KOORDINATOR" in added.stdout
    key = node_dir / "console-keys" / "kari" / "NO-KOORDINATOR.key"
    assert key.stat().st_mode & 0o077 == 0
    assert (node_dir / "console-keys").stat().st_mode & 0o077 == 0
    # bound next to the coordinator's own certificate: the node (and its peers) trust both
    bound = (node_dir / "national" / "NO-KOORDINATOR.pem").read_text()
    assert bound.count("BEGIN CERTIFICATE") == 2
    assert "scope NO-KOORDINATOR" in cli("users", "list", str(node_dir)).stdout
