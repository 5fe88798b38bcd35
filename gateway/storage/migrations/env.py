"""Alembic environment for the gateway's migrations.

Alembic executes this file; importing it anywhere else (a package walk such
as ``imi-gateway errors``) does nothing. ``Database.migrate()`` passes an open
connection (inside its transaction, with the PostgreSQL advisory lock held) in
``config.attributes["connection"]``.
From the ``alembic`` command line (see alembic.ini and docs/storage.md) the
database URL comes from ``-x url=...`` or the IMI_DATABASE_URL variable.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from gateway.storage.engine import create_engine_for
from gateway.storage.tables import metadata

# Set only while Alembic runs this file as its environment script.
config = getattr(context, "config", None)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        # Database.migrate() and run_online() wrap the run in one transaction;
        # both SQLite (with our BEGIN handling) and PostgreSQL roll DDL back.
        transactional_ddl=True,
        # SQLite cannot ALTER most things: let autogenerate emit batch blocks.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "IMI_DATABASE_URL"
    )
    if not url:
        raise SystemExit("give the database URL: alembic -x url=... (or set IMI_DATABASE_URL)")
    return url


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    assert config is not None
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine_for(_url(), pool_size=1)
    try:
        with engine.begin() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if config is not None:
    if config.attributes.get("connection") is None and config.config_file_name:
        fileConfig(config.config_file_name)
    if context.is_offline_mode():
        run_offline()
    else:
        run_online()
