"""Console accounts in the database: sessions shared by processes, expiry, rate-limit counts,
and the audit entry of each login and change in the same transaction (SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.storage.audit import audit_log_txn
from gateway.storage.console_accounts import (
    ConsoleUserExists,
    add_user_txn,
    audited_txn,
    create_session_txn,
    end_session_txn,
    login_failed_txn,
    login_subject,
    recent_failures_txn,
    session_user_txn,
    update_user_txn,
)
from tests.storage.conftest import T0


def _events(db) -> list[tuple[str, str, str]]:
    return [(e.event, e.actor, e.message_id) for e in db.run_txn_sync(audit_log_txn)]


def _add(db, name: str = "olga") -> None:
    db.run_txn_sync(
        add_user_txn, username=name, role="operator", password_hash="h", now=T0, actor="operator"
    )


def test_a_session_seen_by_another_process_moves_on_and_expires(make_database, db) -> None:
    _add(db)
    db.run_txn_sync(
        create_session_txn,
        token_hash="a" * 64,
        username="olga",
        method="password",
        now=T0,
        expires_at=T0 + timedelta(minutes=30),
    )
    other = make_database()  # another gateway process on the same database
    found = other.run_txn_sync(
        session_user_txn,
        "a" * 64,
        now=T0 + timedelta(minutes=20),
        extend_to=T0 + timedelta(minutes=50),
    )
    assert found is not None and found[1].username == "olga"
    later = T0 + timedelta(minutes=45)  # past the first expiry, within the extended one
    assert db.run_txn_sync(session_user_txn, "a" * 64, now=later, extend_to=later) is not None
    assert (
        db.run_txn_sync(session_user_txn, "a" * 64, now=T0 + timedelta(minutes=51), extend_to=T0)
        is None
    )
    assert db.run_txn_sync(session_user_txn, "a" * 64, now=T0, extend_to=T0) is None  # deleted


def test_disabling_a_user_ends_its_sessions_and_each_step_is_audited(db) -> None:
    _add(db)
    db.run_txn_sync(
        create_session_txn,
        token_hash="b" * 64,
        username="olga",
        method="password",
        now=T0,
        expires_at=T0 + timedelta(hours=1),
    )
    db.run_txn_sync(
        update_user_txn,
        "olga",
        now=T0,
        actor="console:root",
        what="disabled",
        values={"disabled_at": T0},
    )
    assert db.run_txn_sync(session_user_txn, "b" * 64, now=T0, extend_to=T0) is None
    assert not db.run_txn_sync(end_session_txn, "b" * 64, now=T0)
    assert _events(db) == [
        ("CONSOLE_CHANGE", "operator", "user-added:olga:operator"),
        ("LOGIN", "console:olga", "password"),
        ("CONSOLE_CHANGE", "console:root", "user-disabled:olga"),
    ]


def test_failed_logins_count_per_subject_within_the_window(db) -> None:
    user, addr = login_subject("user", "olga"), login_subject("addr", "127.0.0.1")
    assert "olga" not in user and "127.0.0.1" not in addr
    for minute in range(3):
        db.run_txn_sync(
            login_failed_txn,
            [user, addr],
            now=T0 + timedelta(minutes=minute),
            actor="console:olga",
            reason="BAD_CREDENTIALS",
        )
    db.run_txn_sync(
        login_failed_txn, [addr], now=T0, actor="console:unknown", reason="BAD_CREDENTIALS"
    )
    assert db.run_txn_sync(recent_failures_txn, [user], since=T0) == 3
    assert db.run_txn_sync(recent_failures_txn, [user, addr], since=T0) == 4
    assert db.run_txn_sync(recent_failures_txn, [user, addr], since=T0 + timedelta(minutes=2)) == 1
    assert [e[0] for e in _events(db)] == ["LOGIN_FAILED"] * 4


def test_a_change_and_its_audit_entry_commit_together_or_not_at_all(db) -> None:
    def change_then_fail(conn) -> None:
        add_user_txn(conn, username="eve", role="auditor", password_hash="h", now=T0, actor="x")
        raise RuntimeError("crash after the change")

    with pytest.raises(RuntimeError):
        db.run_txn_sync(audited_txn, change_then_fail, at=T0, actor="console:olga", subject="s")
    assert _events(db) == []
    _add(db)
    with pytest.raises(ConsoleUserExists):
        _add(db)
    assert len(_events(db)) == 1
