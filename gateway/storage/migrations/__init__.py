"""Alembic migrations of the gateway's database (run through ``Database.migrate()``)."""
