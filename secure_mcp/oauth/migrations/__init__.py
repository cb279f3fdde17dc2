"""Alembic migrations of the authorization server's database (applied by `schema.upgrade`)."""
