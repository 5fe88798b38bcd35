"""The nodes' databases of a benchmark run: SQLite in each node directory, or PostgreSQL.

With ``--database postgresql`` the run creates one new database per node on
the server of ``--database-url`` (default ``IMI_BENCH_POSTGRES_URL``, else
:data:`DEFAULT_POSTGRES_URL`), named ``imi_bench_<random>_<node>``, points the
node's ``[database] url`` at it, and drops it at the end of the run (``WITH
(FORCE)``: the node processes are stopped by then, but a crashed run must not
leave a database behind either). The server URL's own database is only used
to create and drop the others.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from gateway.benchmarks.exchange.options import BenchFailed

#: Where ``--database postgresql`` creates its databases unless told otherwise.
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
#: The environment variable that overrides :data:`DEFAULT_POSTGRES_URL`.
POSTGRES_URL_ENV = "IMI_BENCH_POSTGRES_URL"


def server_url(given: str | None) -> str:
    """The PostgreSQL server URL: ``--database-url``, else the environment, else the default."""
    return given or os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL


def describe(database: str, workers: int) -> str:
    """The report's one-line description of the nodes' databases and processes."""
    processes = (
        "one process per node"
        if workers == 1
        else f"{workers} worker processes per node (run --workers {workers})"
    )
    if database == "postgresql":
        return f"postgresql (one database per node on one local server), {processes}"
    return f"sqlite (WAL, synchronous=FULL), one file per node, {processes}"


@contextmanager
def node_databases(
    database: str, url: str | None, node_ids: Iterable[str]
) -> Iterator[dict[str, str]]:
    """TOML for each node's configuration (empty for SQLite); the databases dropped afterwards."""
    nodes = list(node_ids)
    if database != "postgresql":
        yield {}
        return
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    server = make_url(server_url(url))
    if not server.drivername.startswith("postgresql"):
        raise BenchFailed("--database-url must be a postgresql+psycopg:// URL")
    run = secrets.token_hex(4)
    names = {node: f"imi_bench_{run}_{node.lower()}" for node in nodes}
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    created: list[str] = []
    try:
        try:
            with admin.connect() as conn:
                for name in names.values():
                    conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
                    created.append(name)
        except SQLAlchemyError as exc:
            raise BenchFailed(
                f"cannot create the benchmark's databases on {server.render_as_string()}: "
                f"{type(exc.orig or exc).__name__}"
            ) from None
        urls = {
            node: server.set(database=name).render_as_string(hide_password=False)
            for node, name in names.items()
        }
        yield {node: f'[database]\nurl = "{url}"\n' for node, url in urls.items()}
    finally:
        if created:
            with admin.connect() as conn:
                for name in created:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
