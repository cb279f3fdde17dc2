"""Several client.py processes sharing one state folder, against the real oauth.py and weather.py.

Scripts run `--call` in parallel; terminals stay open side by side. When the access token has
expired, exactly one of them may spend the refresh token: oauth.py rotates it and takes a second
use for theft (RFC 9700 4.14.2), revoking the sign-in for everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.client_fakes import expire_stored_tokens
from tests.support.client_process import run_client
from tests.support.flows import Stack, run_stack
from tests.support.oauth_server import OAuthServer, run_oauth_server
from tests.support.processes import free_port
from tests.support.weather_server import run_weather_server

pytestmark = pytest.mark.process

ACCESS_TOKEN_TTL = 120  # long enough for slow machines: the test expires the stored one
CALL = ("--call", "get_alerts", '{"state": "FL"}')
TOKEN_REQUEST = re.compile(r'"POST /token HTTP/1\.1" (\d+)')


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    env = {"OAUTH_ACCESS_TOKEN_TTL": str(ACCESS_TOKEN_TTL)}
    with run_stack(tmp_path, oauth_env=env, cache_ttl=0) as running:
        yield running


def token_requests(oauth: OAuthServer) -> list[str]:
    """The status of every POST /token in oauth.py's access log so far."""
    return TOKEN_REQUEST.findall(oauth.program.output())


async def test_parallel_calls_with_an_expired_token_refresh_once(
    stack: Stack, tmp_path: Path
) -> None:
    state = tmp_path / "client-state"
    first = await run_client(stack.weather.url, state, *CALL, oauth=stack.oauth)
    assert (first.code, first.signed_in) == (0, 1), first.err
    expire_stored_tokens(state)  # every process now wants to refresh
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


async def test_after_the_authorization_server_is_reset_everything_recovers(
    tmp_path: Path,
) -> None:
    """The README's "delete the folder to start over", with weather.py and a signed-in client
    still around: weather.py reads its new credentials, the client registers again by itself
    (one line each), one sign-in, and --logout says the old tokens are dead, not "valid"."""
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    state = tmp_path / "client-state"
    with contextlib.ExitStack() as stack:
        oauth = stack.enter_context(run_oauth_server(tmp_path, resources=[resource]))
        weather = stack.enter_context(
            run_weather_server(
                tmp_path,
                auth_server=oauth.issuer,
                oauth_data_dir=oauth.data_dir,
                port=port,
                extra_args=("--introspection-cache-ttl", "0"),  # not 30 s of the old token
            )
        )
        first = await run_client(weather.url, state, *CALL, oauth=oauth)
        assert (first.code, first.signed_in) == (0, 1), first.err

        oauth.program.stop()
        shutil.rmtree(oauth.data_dir)  # start over
        with run_oauth_server(tmp_path, resources=[resource], port=oauth.port) as fresh:
            again = await run_client(weather.url, state, *CALL, oauth=fresh)
            assert (again.code, again.signed_in) == (0, 1), again.err
            assert again.err.count("no longer knows this client") == 1
            assert "not registered" not in again.err
            assert json.loads(again.out)["state"] == "FL"
            assert weather.program.output().count("read them again: now introspecting as") == 1

            third = await run_client(weather.url, state, *CALL)  # stored tokens, no sign-in
            assert (third.code, third.signed_in) == (0, 0), third.err

        shutil.rmtree(oauth.data_dir)  # and once more, now with --logout
        with run_oauth_server(tmp_path, resources=[resource], port=oauth.port):
            out = await run_client(weather.url, state, "--logout")
            assert out.code == 0, out.err
            assert "stay valid" not in out.err
            assert out.err.endswith(f"Signed out of {resource}.\n")
