"""The database for operators: ``imi-gateway db status|upgrade``, clear start-up errors, secrets.

A missing PostgreSQL driver, an unreachable server and a schema newer than
the gateway each stop ``db`` and ``run`` with ``error: CODE: ...`` and exit
status 3 (README's promise), naming the cause and never the password.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from twisted.logger import globalLogPublisher

from gateway import cli
from gateway import config as cfg
from gateway.config.secrets import database_url
from gateway.storage.db import Database, head_revision, pending_revisions
from tests.service.bed import postgres_database

SECRET = "s3cret-Pw-never-printed"


@pytest.fixture(scope="module")
def made_node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node = tmp_path_factory.mktemp("made") / "node-no"
    assert cli.main(["init", str(node), "--country", "NO"]) == 0
    return node


@pytest.fixture
def node(made_node: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "node-no"
    shutil.copytree(made_node, copy)
    return copy


def set_database(node: Path, *lines: str) -> None:
    path = node / cfg.CONFIG_FILE
    text = path.read_text()
    assert "\n[database]\n" in text
    path.write_text(
        text.replace("\n[database]\n", "\n[database]\n" + "".join(f"{x}\n" for x in lines))
    )


def gateway(
    *args: str, env: dict[str, str] | None = None, prelude: str = ""
) -> subprocess.CompletedProcess[str]:
    """``imi-gateway ARGS`` in a fresh process (``prelude`` runs first, e.g. to hide a module)."""
    code = f"{prelude}\nimport sys\nfrom gateway.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_db_status_lists_pending_migrations_and_upgrade_applies_them(
    node: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["db", "status", str(node)]) == 1  # a fresh node: everything pending
    out = capsys.readouterr().out
    assert "current revision: none" in out
    assert f"newest revision:  {head_revision()}" in out
    shipped = pending_revisions(None)  # every migration, oldest first
    assert shipped[:2] == ["0001", "0002"] and shipped[-1] == head_revision()
    assert f"pending migrations: {' '.join(shipped)}" in out

    assert cli.main(["db", "upgrade", str(node)]) == 0
    assert f"applied {len(shipped)} migration(s): {' '.join(shipped)}" in capsys.readouterr().out
    assert cli.main(["db", "upgrade", str(node)]) == 0
    assert "nothing to apply" in capsys.readouterr().out
    assert cli.main(["db", "status", str(node), "--json"]) == 0
    out = capsys.readouterr().out
    assert f'"current": "{head_revision()}"' in out and '"pending": []' in out


def test_migration_at_start_is_logged(tmp_path: Path) -> None:
    events: list[dict[str, object]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        db = Database(f"sqlite:///{tmp_path / 'node.db'}", reactor=None, inline=True)
        try:
            assert db.migrate() == pending_revisions(None)
            assert db.migrate() == []  # current: nothing logged the second time
        finally:
            db.engine.dispose()
    finally:
        globalLogPublisher.removeObserver(events.append)
    formats = [str(e.get("log_format")) for e in events]
    assert sum("Migrating the database schema" in f for f in formats) == 1
    assert sum("Database schema migrated" in f for f in formats) == 1


def test_a_schema_newer_than_the_gateway_is_refused_by_db_and_run(node: Path) -> None:
    assert cli.main(["db", "upgrade", str(node)]) == 0
    with sqlite3.connect(node / "gateway.sqlite3") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    for args in (["db", "status", str(node)], ["db", "upgrade", str(node)], ["run", str(node)]):
        done = gateway(*args)
        assert done.returncode == 3, (args, done.stderr)
        assert "error: DATABASE_SCHEMA_TOO_NEW:" in done.stderr
        assert "0099" in done.stderr and "Traceback" not in done.stderr
    assert not (node / "ports.json").exists()  # run stopped before listening


def test_postgresql_without_its_driver_names_the_extra_to_install(node: Path) -> None:
    set_database(node, 'url = "postgresql+psycopg://gateway@127.0.0.1:5432/gateway"')
    hide = "import sys; sys.modules['psycopg'] = None"
    for args in (["db", "status", str(node)], ["run", str(node)]):
        done = gateway(*args, prelude=hide)
        assert done.returncode == 3, done.stderr
        assert "error: DATABASE_DRIVER_MISSING:" in done.stderr
        assert "pip install 'imi-gateway[postgres]'" in done.stderr
        assert "Traceback" not in done.stderr


def test_an_unreachable_database_is_named_with_its_cause_and_never_its_password(
    node: Path,
) -> None:
    # Port 1 on loopback: nothing listens, the kernel refuses at once.
    set_database(node, f'url = "postgresql+psycopg://gateway:{SECRET}@127.0.0.1:1/gateway"')
    for args in (["db", "upgrade", str(node)], ["run", str(node)]):
        done = gateway(*args)
        assert done.returncode == 3, done.stderr
        assert "error: DATABASE_UNAVAILABLE:" in done.stderr
        assert "127.0.0.1:1: connection refused" in done.stderr
        assert SECRET not in done.stderr + done.stdout
        assert "Traceback" not in done.stderr


def test_the_password_comes_from_a_file_or_the_environment(node: Path) -> None:
    set_database(node, 'url = "postgresql+psycopg://gateway@db.example.org/gateway"')
    (node / "db-password").write_text(SECRET + "\n")
    text = (node / cfg.CONFIG_FILE).read_text()

    with_file = text.replace("[database]\n", '[database]\npassword_file = "db-password"\n')
    config = cfg.parse_config(with_file, node)
    assert make_url(database_url(config)).password == SECRET
    assert SECRET not in repr(config)

    with_env = text.replace("[database]\n", '[database]\npassword_env = "IMI_TEST_DB_PW"\n')
    config = cfg.parse_config(with_env, node)
    os.environ["IMI_TEST_DB_PW"] = SECRET
    try:
        assert make_url(database_url(config)).password == SECRET
    finally:
        del os.environ["IMI_TEST_DB_PW"]
    (node / cfg.CONFIG_FILE).write_text(with_env)
    done = gateway("db", "status", str(node))  # the variable is not set
    assert done.returncode == 3
    assert "error: DATABASE_SECRET_MISSING: database.password_env: " in done.stderr


def test_the_whole_url_can_come_from_a_file(node: Path) -> None:
    url_file = node / "database-url"
    url_file.write_text(f"sqlite:///{node / 'elsewhere.sqlite3'}\n")
    set_database(node, 'url_file = "database-url"')
    assert cli.main(["db", "upgrade", str(node)]) == 0
    assert (node / "elsewhere.sqlite3").exists()
    assert not (node / "gateway.sqlite3").exists()


def test_shared_processes_need_postgresql(node: Path) -> None:
    text = (node / cfg.CONFIG_FILE).read_text()
    shared = text.replace("[node]\n", '[node]\nprocesses = "shared"\n', 1)
    with pytest.raises(cfg.ConfigValueInvalid, match=r"node\.processes"):
        cfg.parse_config(shared, node)


def test_db_upgrade_and_status_on_postgresql_with_the_password_from_the_environment(
    node: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with postgres_database() as url:
        parsed = make_url(url)
        set_database(
            node,
            f'url = "{parsed.set(password=None).render_as_string(hide_password=False)}"',
            'password_env = "IMI_TEST_DB_PW"',
        )
        os.environ["IMI_TEST_DB_PW"] = parsed.password or "unused-with-trust-auth"
        try:
            assert cli.main(["db", "status", str(node)]) == 1
            assert cli.main(["db", "upgrade", str(node)]) == 0
            assert cli.main(["db", "status", str(node)]) == 0
        finally:
            del os.environ["IMI_TEST_DB_PW"]
        out = capsys.readouterr().out
        assert f"database: postgresql {parsed.host}:{parsed.port or 5432}" in out
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        finally:
            engine.dispose()
        assert version == head_revision()
