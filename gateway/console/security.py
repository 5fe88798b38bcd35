"""The console's secrets: argon2id password hashes, session tokens, CSRF tokens.

* Passwords are hashed with argon2id (``argon2-cffi``'s defaults, RFC 9106's
  second recommended parameters). Verify on a thread pool: it costs tens of
  milliseconds on purpose.
* A session token is 32 random bytes (URL-safe text) in an HttpOnly, Secure,
  SameSite=Strict cookie; the database keeps only its SHA-256.
* The CSRF token of a session is an HMAC of its token: per session, never
  stored, compared with :func:`hmac.compare_digest`. The login form, which has
  no session yet, carries a random token that must equal a pre-login cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.core.docxml import sha256_hex
from gateway.core.errors import InvalidInput

_HASHER = PasswordHasher()  # argon2id
#: Verified when the user is unknown, so an unknown name costs as much as a wrong password.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))

#: Shortest password accepted.
MIN_PASSWORD_LENGTH = 12


class PasswordTooWeak(InvalidInput):
    """The password is too short (at least 12 characters) or equals the user name."""

    code = "CONSOLE_PASSWORD_TOO_WEAK"


def check_password_rules(username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH or password.lower() == username.lower():
        raise PasswordTooWeak(
            f"password: at least {MIN_PASSWORD_LENGTH} characters, not the user name"
        )


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string) of ``password``."""
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (None: no password login; costs the same)."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the database keeps of a session token."""
    return sha256_hex(token.encode())


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session (an HMAC of its token, so never stored)."""
    return hmac.new(session_token.encode(), b"imi-console-csrf", hashlib.sha256).hexdigest()


def same(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two tokens (False if either is missing)."""
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode(), b.encode())


__all__ = [
    "MIN_PASSWORD_LENGTH",
    "PasswordTooWeak",
    "check_password_rules",
    "csrf_token",
    "hash_password",
    "new_token",
    "same",
    "token_hash",
    "verify_password",
]
