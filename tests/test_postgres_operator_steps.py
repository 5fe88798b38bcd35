"""docs/operator.md's PostgreSQL steps, run as written against the local server.

The ```sql block (role, database, grants) runs through ``psql`` as the
superuser, with the role and database renamed so runs never collide; then a
node migrates its schema as that role, its password coming from the
environment, and ``db status`` finds the schema current.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from gateway import cli
from gateway import config as cfg
from tests.conftest import postgres_url, require_tool

GUIDE = Path(__file__).parent.parent / "docs" / "operator.md"


def test_the_guides_role_database_and_grants_let_a_node_migrate_as_that_role(
    tmp_path: Path,
) -> None:
    server = make_url(postgres_url())
    psql = require_tool("psql")
    (sql,) = re.findall(r"```sql\n(.*?)```", GUIDE.read_text(), flags=re.S)
    suffix = secrets.token_hex(4)
    role, database = f"imi_gateway_{suffix}", f"imi_gateway_no_{suffix}"
    sql = sql.replace("imi_gateway_no", database).replace("imi_gateway ", f"{role} ")
    sql = sql.replace("imi_gateway;", f"{role};")
    assert role in sql and database in sql and "imi_gateway " not in sql
    connect = [
        psql, "-X", "-q", "-v", "ON_ERROR_STOP=1",
        "-h", server.host or "127.0.0.1", "-p", str(server.port or 5432),
        "-U", server.username or "postgres", "-d", server.database or "postgres",
    ]  # fmt: skip
    env = {**os.environ, "PGPASSWORD": server.password or ""}
    done = subprocess.run([*connect, "-c", "SELECT 1"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    try:
        done = subprocess.run(connect, input=sql, capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        node = tmp_path / "node-no"
        assert cli.main(["init", str(node), "--country", "NO"]) == 0
        url = server.set(username=role, password=None, database=database)
        toml = node / cfg.CONFIG_FILE
        toml.write_text(
            toml.read_text().replace(
                "\n[database]\n",
                f'\n[database]\nurl = "{url.render_as_string(hide_password=False)}"\n'
                'password_env = "IMI_DB_PASSWORD"\n',
            )
        )
        gateway = [sys.executable, "-m", "gateway"]
        run_env = {**os.environ, "IMI_DB_PASSWORD": "change-me"}
        for args, status in ((["db", "upgrade"], 0), (["db", "status"], 0)):
            done = subprocess.run(
                [*gateway, *args, str(node)], capture_output=True, text=True, env=run_env
            )
            assert done.returncode == status, done.stderr
        assert "pending migrations: none" in done.stdout
        owner = subprocess.run(
            [*connect[:-1], database, "-At", "-c", "SELECT tableowner FROM pg_tables WHERE tablename = 'outbox'"],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        assert owner.stdout.strip() == role
    finally:
        subprocess.run(
            [*connect, "-c", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'],
            capture_output=True, env=env,
        )  # fmt: skip
        subprocess.run(
            [*connect, "-c", f'DROP ROLE IF EXISTS "{role}"'], capture_output=True, env=env
        )
