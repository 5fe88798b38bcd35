"""Alembic migrations: from empty to head, idempotent, concurrent-safe, in step with tables.py."""

from __future__ import annotations

import threading

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from gateway.storage.db import MIGRATIONS_DIR, alembic_config, head_revision
from gateway.storage.errors import SchemaNotCurrent
from gateway.storage.tables import metadata

TABLES = {"exchanges", "messages", "outbox", "envelopes_in", "deliveries", "tracking"}


def schema_diff(db) -> list:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, metadata)


def version_rows(db) -> list[str]:
    return db.run_txn_sync(
        lambda conn: list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    )


def test_migrations_ship_one_linear_history() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1
    assert head_revision() == script.get_current_head()
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    revisions = list(script.walk_revisions())
    assert revisions[-1].down_revision is None


def test_migrate_builds_the_schema_from_empty(make_database) -> None:
    db = make_database()
    assert db.current_revision() is None
    with pytest.raises(SchemaNotCurrent) as caught:
        db.check_schema()
    assert caught.value.code == "DATABASE_SCHEMA_OUTDATED"

    db.migrate()

    assert db.current_revision() == head_revision()
    db.check_schema()
    assert TABLES <= set(inspect(db.engine).get_table_names())
    assert schema_diff(db) == []  # the migrations create exactly what tables.py describes


def test_migrate_is_idempotent(make_database) -> None:
    db = make_database()
    db.migrate()
    db.migrate()
    make_database().migrate()
    assert version_rows(db) == [head_revision()]
    assert schema_diff(db) == []


def test_concurrent_migrations_from_two_processes_are_safe(make_database) -> None:
    databases = [make_database(), make_database()]  # separate engines, like two processes
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(db) -> None:
        try:
            start.wait(timeout=30)
            db.migrate()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(db,)) for db in databases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert errors == []
    assert version_rows(databases[0]) == [head_revision()]
    assert schema_diff(databases[0]) == []


def test_downgrade_to_empty_and_upgrade_again(db) -> None:
    config = alembic_config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert not TABLES & set(inspect(db.engine).get_table_names())
    db.migrate()
    assert schema_diff(db) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_connections_have_the_gateway_pragmas(make_database) -> None:
    db = make_database()
    with db.engine.connect() as conn:
        values = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in (
                "journal_mode",
                "foreign_keys",
                "secure_delete",
                "synchronous",
                "busy_timeout",
            )
        }
    assert values == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "secure_delete": 1,
        "synchronous": 2,  # FULL
        "busy_timeout": 30000,
    }
