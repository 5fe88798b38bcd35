"""Durable storage: SQLAlchemy Core tables, Alembic migrations, stores run on a thread pool.

* ``db``: engines (SQLite pragmas and ``BEGIN IMMEDIATE``; PostgreSQL via
  psycopg 3) and :class:`~gateway.storage.db.Database`, which runs
  ``*_txn(conn, ...)`` functions in one transaction each on its own thread
  pool, retries lock and serialization failures, and runs the migrations;
* ``tables``: the schema; ``migrations/``: its Alembic history;
* ``model``: the dataclasses the stores take and return;
* ``messages``, ``exchanges``, ``outbox``, ``deliveries``, ``tracking``, ``audit``: the
  stores, plain ``*_txn`` functions;
* ``errors``: the storage error codes.

Personal data is only ever stored sealed with its exchange's data key
(``gateway.core.dataprotect``). See docs/storage.md.
"""
