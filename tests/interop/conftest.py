"""The real oauth.py + weather.py (NWS replayed) with short-lived access tokens, for interop."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.oauth_server import OAuthServer, run_oauth_server
from tests.support.processes import free_port
from tests.support.weather_server import WeatherServer, run_weather_server

ACCESS_TOKEN_TTL = 3  # seconds: the tests wait past it to see the client refresh
PAST_EXPIRY = ACCESS_TOKEN_TTL + 1.5


@dataclass
class Stack:
    """oauth.py and weather.py, running together."""

    oauth: OAuthServer
    weather: WeatherServer


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Both programs on loopback; access tokens live ACCESS_TOKEN_TTL seconds."""
    tmp_path = tmp_path_factory.mktemp("interop")
    port = free_port()
    env = {"OAUTH_ACCESS_TOKEN_TTL": str(ACCESS_TOKEN_TTL)}
    with (
        run_oauth_server(
            tmp_path, resources=[f"http://127.0.0.1:{port}/mcp"], extra_env=env
        ) as oauth,
        run_weather_server(
            tmp_path, auth_server=oauth.issuer, oauth_data_dir=oauth.data_dir, port=port
        ) as weather,
    ):
        yield Stack(oauth, weather)
