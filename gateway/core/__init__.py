"""Sans-IO core: parsing, schemas, signing, policy, lifecycle, audit chain.

Nothing in this package may import twisted or sqlalchemy, open sockets or
touch the database; tests/core/test_sans_io.py enforces the imports.
"""
