"""Durable storage: SQLAlchemy Core tables, Alembic migrations, stores run on a thread pool."""
