"""One real oauth.py + weather.py for the whole attack suite, started once, checked at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.attack_stack import (
    CACHE_TTL,
    SCOPES,
    deadlines,
)
from tests.support.flows import LiveAuth, Stack, live_auth, run_stack


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """oauth.py (resources: weather's and a foreign one) and weather.py (replayed NWS)."""
    tmp_path = tmp_path_factory.mktemp("attacks")
    oauth_env = {"OAUTH_SCOPES": SCOPES, **deadlines("OAUTH")}
    with run_stack(
        tmp_path, oauth_env=oauth_env, weather_env=deadlines("WEATHER"), cache_ttl=CACHE_TTL
    ) as running:
        yield running
        # No attack may crash a handler: an unhandled exception would print a traceback.
        assert "Traceback" not in running.oauth.program.output()
        assert "Traceback" not in running.weather.program.output()


@pytest.fixture
async def auth(stack: Stack) -> AsyncIterator[LiveAuth]:
    """A browser-like client with its own cookie jar, targeting weather.py's resource."""
    async with live_auth(stack.oauth, stack.weather.url) as client:
        yield client
