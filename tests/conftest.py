"""Fixtures every test folder may use: PostgreSQL, chromium, the served Claude stand-in, the
authorization server in process with machine clients enabled (`machine`), and one real
oauth.py + weather.py shared by the whole run (`live_stack`)."""

from tests.support.anthropic_standin import claude
from tests.support.browser import chromium
from tests.support.flows import live_stack
from tests.support.machine_clients import machine
from tests.support.postgres import database_url, postgres, postgres_url

__all__ = [
    "chromium",
    "claude",
    "database_url",
    "live_stack",
    "machine",
    "postgres",
    "postgres_url",
]
