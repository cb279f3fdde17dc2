"""Several client.py processes sharing one state folder, against the real oauth.py and weather.py.

Scripts run `--call` in parallel; terminals stay open side by side. When the access token has
expired, exactly one of them may spend the refresh token: oauth.py rotates it and takes a second
use for theft (RFC 9700 4.14.2), revoking the sign-in for everyone.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.client_process import run_client
from tests.support.oauth_server import OAuthServer, run_oauth_server
from tests.support.processes import free_port
from tests.support.weather_server import WeatherServer, run_weather_server

pytestmark = pytest.mark.process

ACCESS_TOKEN_TTL = 2
CALL = ("--call", "get_alerts", '{"state": "FL"}')
TOKEN_REQUEST = re.compile(r'"POST /token HTTP/1\.1" (\d+)')


@dataclass
class Stack:
    oauth: OAuthServer
    weather: WeatherServer


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    port = free_port()
    with (
        run_oauth_server(
            tmp_path,
            resources=[f"http://127.0.0.1:{port}/mcp"],
            extra_env={"OAUTH_ACCESS_TOKEN_TTL": str(ACCESS_TOKEN_TTL)},
        ) as oauth,
        run_weather_server(
            tmp_path,
            auth_server=oauth.issuer,
            oauth_data_dir=oauth.data_dir,
            port=port,
            extra_args=("--introspection-cache-ttl", "0"),
        ) as weather,
    ):
        yield Stack(oauth, weather)


def token_requests(oauth: OAuthServer) -> list[str]:
    """The status of every POST /token in oauth.py's access log so far."""
    return TOKEN_REQUEST.findall(oauth.program.output())


async def test_parallel_calls_with_an_expired_token_refresh_once(
    stack: Stack, tmp_path: Path
) -> None:
    state = tmp_path / "client-state"
    first = await run_client(stack.weather.url, state, *CALL, oauth=stack.oauth)
    assert (first.code, first.signed_in) == (0, 1), first.err
    await asyncio.sleep(ACCESS_TOKEN_TTL + 1)  # the access token has expired, here and at oauth.py
    before = len(token_requests(stack.oauth))

    # --paste with no input: a process that wanted a sign-in would fail at once, not wait.
    runs = await asyncio.gather(
        *(run_client(stack.weather.url, state, "--paste", *CALL) for _ in range(8))
    )
    for run in runs:
        assert run.code == 0, run.err
        assert "Sign in" not in run.err
        assert json.loads(run.out)["state"] == "FL"
    assert token_requests(stack.oauth)[before:] == ["200"]  # one refresh, no reuse, no sign-in
    assert "/authorize" not in stack.oauth.program.output().split("POST /token")[-1]
