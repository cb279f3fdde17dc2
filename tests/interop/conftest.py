"""The real oauth.py + weather.py (NWS replayed) with short-lived access tokens, for interop."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.oauth_server import OAuthServer, run_oauth_server
from tests.support.processes import free_port
from tests.support.weather_server import WeatherServer, run_weather_server

ACCESS_TOKEN_TTL = 3  # seconds: the tests wait past it to see the client refresh
INITIAL_ACCESS_TOKEN = "interop-initial-access-token-" + "i" * 16  # a test value
JWT_SKEW = 5  # weather.py accepts a JWT this long after its exp (clock skew)


@dataclass
class Stack:
    """oauth.py and weather.py, running together."""

    oauth: OAuthServer
    weather: WeatherServer
    token_format: str

    @property
    def past_expiry(self) -> float:
        """Seconds to wait until weather.py refuses a token issued now."""
        skew = JWT_SKEW if self.token_format == "jwt" else 0
        return ACCESS_TOKEN_TTL + skew + 1.5


@pytest.fixture(scope="module", params=["opaque", "jwt"])
def stack(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """Both programs on loopback, in each access token format; tokens live ACCESS_TOKEN_TTL s."""
    tmp_path = tmp_path_factory.mktemp("interop")
    port = free_port()
    token_format = str(request.param)
    env = {
        "OAUTH_ACCESS_TOKEN_TTL": str(ACCESS_TOKEN_TTL),
        "OAUTH_ACCESS_TOKEN_FORMAT": token_format,
        "OAUTH_INITIAL_ACCESS_TOKEN": INITIAL_ACCESS_TOKEN,  # machine clients (issue 14)
    }
    with (
        run_oauth_server(
            tmp_path, resources=[f"http://127.0.0.1:{port}/mcp"], extra_env=env
        ) as oauth,
        run_weather_server(
            tmp_path, auth_server=oauth.issuer, oauth_data_dir=oauth.data_dir, port=port
        ) as weather,
    ):
        yield Stack(oauth, weather, token_format)
