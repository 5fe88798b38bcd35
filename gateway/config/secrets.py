"""The database URL with its secrets, read when the database is opened (never at config load).

``[database]`` may keep the password out of ``gateway.toml``:

* ``url_file``: a file (mode 0600, owned by the gateway's user) holding the whole URL;
* ``password_file``: a file holding only the password (systemd's
  ``LoadCredential=`` puts one in ``$CREDENTIALS_DIRECTORY``; ``password_file``
  may name that directory as ``${CREDENTIALS_DIRECTORY}/NAME``);
* ``password_env``: an environment variable holding the password.

Relative file names are relative to the node directory. Only the first line
of a file is used, without its line end. The resolved URL is never logged and
never put in an error message (:func:`gateway.storage.engine.describe_server`
names the server without credentials).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from gateway.config.model import ConfigValueInvalid, NodeConfig
from gateway.core.errors import ConfigurationError


class DatabaseSecretMissing(ConfigurationError):
    """The database URL file, password file or password environment variable named in [database] cannot be read."""

    code = "DATABASE_SECRET_MISSING"


def _read_secret(node_dir: Path, name: str, setting: str) -> str:
    path = Path(os.path.expandvars(name))
    path = path if path.is_absolute() else node_dir / path
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise DatabaseSecretMissing(f"database.{setting}: cannot read {path}: {reason}") from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise DatabaseSecretMissing(f"database.{setting}: {path} is empty")
    return lines[0]


def database_url(config: NodeConfig) -> str:
    """The URL to connect with: ``database.url`` or the ``url_file``'s, with the password from
    ``password_file`` or ``password_env`` when one is set."""
    db = config.database
    url = db.url
    if db.url_file:
        url = _read_secret(config.node_dir, db.url_file, "url_file")
    if not (db.password_file or db.password_env):
        return url
    if db.password_file:
        password = _read_secret(config.node_dir, db.password_file, "password_file")
    else:
        assert db.password_env is not None
        value = os.environ.get(db.password_env)
        if not value:
            raise DatabaseSecretMissing(
                f"database.password_env: the environment variable {db.password_env} is not set"
            )
        password = value
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigValueInvalid("database.url: not a valid database URL") from None
    if parsed.get_backend_name() != "postgresql":
        raise ConfigValueInvalid("database.password_file, password_env: only for PostgreSQL")
    return parsed.set(password=password).render_as_string(hide_password=False)


__all__ = ["DatabaseSecretMissing", "database_url"]
