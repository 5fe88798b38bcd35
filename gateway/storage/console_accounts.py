"""The admin console's accounts: users, sessions, failed logins, and audited changes.

Every change here appends its audit entry (``gateway.core.audit.Event``
LOGIN, LOGIN_FAILED, LOGOUT, CONSOLE_CHANGE) inside the transaction that
makes it. Actors are ``console:<username>`` (:func:`console_actor`).

* Sessions are stored by the SHA-256 of their token only: several gateway
  processes sharing one database share the sessions, and a copy of the
  database hands out none. A session expires ``expires_at``; each use moves
  it on (:func:`session_user_txn`).
* Failed logins are counted per subject, the hash of ``user:<name>`` or
  ``addr:<client address>`` (:func:`login_subject`), so rate limiting holds
  across processes without storing names or addresses in clear.
* :func:`audited_txn` runs a change made through the console (a dead
  letter's retry, say) and its CONSOLE_CHANGE entry in one transaction.

Password hashing (argon2id) is not done here: the caller hands in the hash.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from gateway.core.audit import Event
from gateway.core.docxml import sha256_hex
from gateway.core.errors import Conflict, NotFound
from gateway.storage.audit import append_audit_txn
from gateway.storage.db import read_only
from gateway.storage.tables import (
    CONSOLE_ROLES,
    console_login_failures,
    console_sessions,
    console_users,
)

T = TypeVar("T")


class ConsoleUserExists(Conflict):
    """A console user of this name exists already."""

    code = "CONSOLE_USER_EXISTS"


class ConsoleUserUnknown(NotFound):
    """There is no console user of this name."""

    code = "CONSOLE_USER_UNKNOWN"


@dataclass(frozen=True)
class ConsoleUser:
    """A console account (no secret but the password hash, which callers never show)."""

    username: str
    role: str
    coordinator_id: str | None
    password_hash: str | None
    cert_fingerprint: str | None
    language: str | None
    created_at: datetime
    disabled_at: datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True)
class ConsoleSession:
    token_hash: str
    username: str
    method: str
    created_at: datetime
    expires_at: datetime


def console_actor(username: str) -> str:
    """The audit actor of a console user: ``console:<username>``."""
    return f"console:{username}"


def login_subject(kind: str, value: str) -> str:
    """The stored key of a rate-limited subject (``user`` or ``addr``): a hash, never the value."""
    return sha256_hex(f"{kind}:{value}".encode())


def _user(row: Any) -> ConsoleUser:
    return ConsoleUser(
        username=row.username,
        role=row.role,
        coordinator_id=row.coordinator_id,
        password_hash=row.password_hash,
        cert_fingerprint=row.cert_fingerprint,
        language=row.language,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


def _change(conn: Connection, at: datetime, actor: str, subject: str) -> None:
    append_audit_txn(conn, at=at, event=Event.CONSOLE_CHANGE, actor=actor, message_id=subject)


# --- users --------------------------------------------------------------------------


def add_user_txn(
    conn: Connection,
    *,
    username: str,
    role: str,
    password_hash: str | None,
    now: datetime,
    actor: str,
    coordinator_id: str | None = None,
    cert_fingerprint: str | None = None,
    language: str | None = None,
) -> ConsoleUser:
    """Create a user; CONSOLE_USER_EXISTS if the name is taken. Audited: ``user-added:NAME:ROLE``."""
    assert role in CONSOLE_ROLES, role
    if conn.execute(
        select(console_users.c.username).where(console_users.c.username == username)
    ).first():
        raise ConsoleUserExists(f"username: a console user {username!r} exists already")
    conn.execute(
        insert(console_users).values(
            username=username,
            role=role,
            coordinator_id=coordinator_id,
            password_hash=password_hash,
            cert_fingerprint=cert_fingerprint,
            language=language,
            created_at=now,
        )
    )
    _change(conn, now, actor, f"user-added:{username}:{role}")
    return user_txn(conn, username)


@read_only
def users_txn(conn: Connection) -> list[ConsoleUser]:
    return [
        _user(r) for r in conn.execute(select(console_users).order_by(console_users.c.username))
    ]


@read_only
def find_user_txn(conn: Connection, username: str) -> ConsoleUser | None:
    row = conn.execute(select(console_users).where(console_users.c.username == username)).first()
    return None if row is None else _user(row)


def user_txn(conn: Connection, username: str) -> ConsoleUser:
    user = find_user_txn(conn, username)
    if user is None:
        raise ConsoleUserUnknown(f"username: no console user {username!r}")
    return user


@read_only
def user_by_certificate_txn(conn: Connection, fingerprint: str) -> ConsoleUser | None:
    """The active user bound to a client certificate's fingerprint, if exactly one is."""
    rows = conn.execute(
        select(console_users).where(
            console_users.c.cert_fingerprint == fingerprint, console_users.c.disabled_at.is_(None)
        )
    ).all()
    return _user(rows[0]) if len(rows) == 1 else None


def update_user_txn(
    conn: Connection,
    username: str,
    *,
    now: datetime,
    actor: str,
    what: str,
    values: Mapping[str, Any],
) -> ConsoleUser:
    """Set columns of a user (password_hash, role, disabled_at, ...); audited ``user-WHAT:NAME``.

    Disabling a user or changing its password or role ends its sessions.
    """
    user_txn(conn, username)
    conn.execute(
        update(console_users).where(console_users.c.username == username).values(**dict(values))
    )
    if {"password_hash", "role", "disabled_at", "cert_fingerprint"} & set(values):
        conn.execute(delete(console_sessions).where(console_sessions.c.username == username))
    _change(conn, now, actor, f"user-{what}:{username}")
    return user_txn(conn, username)


def set_language_txn(conn: Connection, username: str, language: str | None) -> None:
    """A user's own interface language (a preference, not audited)."""
    conn.execute(
        update(console_users).where(console_users.c.username == username).values(language=language)
    )


# --- sessions -----------------------------------------------------------------------


def create_session_txn(
    conn: Connection,
    *,
    token_hash: str,
    username: str,
    method: str,
    now: datetime,
    expires_at: datetime,
) -> ConsoleSession:
    """Open a session after a successful login; audited LOGIN (``password`` or ``certificate``).

    The user's failed-login count starts again; the address's does not
    (another user's guesses from there still count).
    """
    conn.execute(
        insert(console_sessions).values(
            token_hash=token_hash,
            username=username,
            method=method,
            created_at=now,
            expires_at=expires_at,
        )
    )
    conn.execute(
        delete(console_login_failures).where(
            console_login_failures.c.subject == login_subject("user", username)
        )
    )
    append_audit_txn(
        conn, at=now, event=Event.LOGIN, actor=console_actor(username), message_id=method
    )
    return ConsoleSession(token_hash, username, method, now, expires_at)


def session_user_txn(
    conn: Connection, token_hash: str, *, now: datetime, extend_to: datetime
) -> tuple[ConsoleSession, ConsoleUser] | None:
    """The live session of ``token_hash`` and its active user, moved on to ``extend_to``.

    None for an unknown or expired session, or a disabled user (an expired
    session is deleted).
    """
    row = conn.execute(
        select(console_sessions).where(console_sessions.c.token_hash == token_hash)
    ).first()
    if row is None:
        return None
    if row.expires_at <= now:
        conn.execute(delete(console_sessions).where(console_sessions.c.token_hash == token_hash))
        return None
    user = find_user_txn(conn, row.username)
    if user is None or not user.active:
        return None
    if extend_to > row.expires_at:
        conn.execute(
            update(console_sessions)
            .where(console_sessions.c.token_hash == token_hash)
            .values(expires_at=extend_to)
        )
    session = ConsoleSession(row.token_hash, row.username, row.method, row.created_at, extend_to)
    return session, user


def end_session_txn(conn: Connection, token_hash: str, *, now: datetime) -> bool:
    """Log out: delete the session; audited LOGOUT. False if there was none."""
    row = conn.execute(
        select(console_sessions).where(console_sessions.c.token_hash == token_hash)
    ).first()
    if row is None:
        return False
    conn.execute(delete(console_sessions).where(console_sessions.c.token_hash == token_hash))
    append_audit_txn(conn, at=now, event=Event.LOGOUT, actor=console_actor(row.username))
    return True


def purge_sessions_txn(conn: Connection, *, now: datetime, failures_before: datetime) -> int:
    """Delete expired sessions and failed logins older than the window; the number deleted."""
    a = conn.execute(delete(console_sessions).where(console_sessions.c.expires_at <= now)).rowcount
    b = conn.execute(
        delete(console_login_failures).where(console_login_failures.c.at < failures_before)
    ).rowcount
    return int(a) + int(b)


# --- failed logins ------------------------------------------------------------------


@read_only
def recent_failures_txn(conn: Connection, subjects: Sequence[str], *, since: datetime) -> int:
    """The largest number of failed logins since ``since`` among ``subjects``."""
    rows = conn.execute(
        select(console_login_failures.c.subject, func.count().label("n"))
        .where(
            console_login_failures.c.subject.in_(list(subjects)),
            console_login_failures.c.at >= since,
        )
        .group_by(console_login_failures.c.subject)
    )
    return max((int(r.n) for r in rows), default=0)


def login_failed_txn(
    conn: Connection, subjects: Sequence[str], *, now: datetime, actor: str, reason: str
) -> None:
    """Count a failed login against ``subjects``; audited LOGIN_FAILED with ``reason`` (a code)."""
    if subjects:
        conn.execute(insert(console_login_failures), [{"subject": s, "at": now} for s in subjects])
    append_audit_txn(conn, at=now, event=Event.LOGIN_FAILED, actor=actor, message_id=reason)


# --- changes made through the console -------------------------------------------------


def audited_txn(
    conn: Connection,
    change: Callable[[Connection], T],
    *,
    at: datetime,
    actor: str,
    subject: str,
) -> T:
    """Run ``change(conn)`` and its CONSOLE_CHANGE entry (``subject``) in this one transaction."""
    result = change(conn)
    _change(conn, at, actor, subject)
    return result


def record_console_change_txn(conn: Connection, *, at: datetime, actor: str, subject: str) -> None:
    """The CONSOLE_CHANGE entry of a change kept in files (the directory), written right after it."""
    _change(conn, at, actor, subject)


__all__ = [
    "ConsoleSession",
    "ConsoleUser",
    "ConsoleUserExists",
    "ConsoleUserUnknown",
    "add_user_txn",
    "audited_txn",
    "console_actor",
    "create_session_txn",
    "end_session_txn",
    "find_user_txn",
    "login_failed_txn",
    "login_subject",
    "purge_sessions_txn",
    "recent_failures_txn",
    "record_console_change_txn",
    "session_user_txn",
    "set_language_txn",
    "update_user_txn",
    "user_by_certificate_txn",
    "user_txn",
    "users_txn",
]
