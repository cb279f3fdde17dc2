"""Fixtures every test folder may use: the throwaway PostgreSQL cluster and database URLs."""

from tests.support.postgres import database_url, postgres, postgres_url

__all__ = ["database_url", "postgres", "postgres_url"]
