"""One real oauth.py + weather.py for the whole attack suite, started once, checked at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.flows import LiveAuth, Stack, live_auth, run_stack

SCOPES = "weather:read weather:alerts"  # two scopes, so that a refresh can try to widen
CACHE_TTL = 1.0  # weather.py's introspection cache: a revoked token dies within a second
HEADER_TIMEOUT = 2.0  # seconds a request head may take (10 by default); short to keep tests fast
BODY_TIMEOUT = 2.0  # seconds a request body may take after its head (30 by default)
FAILED_TOKEN_LIMIT = 30  # bad tokens per minute per source at weather.py (the default)


def deadlines(prefix: str) -> dict[str, str]:
    """Short header and body deadlines for oauth.py (OAUTH_) or weather.py (WEATHER_)."""
    return {
        f"{prefix}_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        f"{prefix}_BODY_TIMEOUT": str(BODY_TIMEOUT),
    }


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
