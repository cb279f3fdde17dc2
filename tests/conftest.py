"""Fixtures every test folder may use: PostgreSQL, chromium, the served Claude stand-in, and
the authorization server in process with machine clients enabled (`machine`)."""

from tests.support.anthropic_standin import claude
from tests.support.browser import chromium
from tests.support.machine_clients import machine
from tests.support.postgres import database_url, postgres, postgres_url

__all__ = ["chromium", "claude", "database_url", "machine", "postgres", "postgres_url"]
