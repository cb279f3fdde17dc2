"""Whole OAuth flows against the real oauth.py and weather.py processes, over HTTP.

`run_stack` starts both programs; `LiveAuth` registers, authorizes headlessly (the real login and
consent forms), redeems, refreshes, introspects and revokes; `mcp_post` calls the MCP endpoint.
In-process equivalents live in tests/support/oauth_harness.py (its `pkce`, `query_of`, `Flow`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from secure_mcp.common.resource_credentials import load_all
from tests.support.headless import authorize_headlessly
from tests.support.machine_clients import INITIAL_ACCESS_TOKEN
from tests.support.oauth_harness import Flow, authorization_query, code_form, pkce, query_of
from tests.support.oauth_server import OAuthServer, run_oauth_server
from tests.support.processes import free_port
from tests.support.weather_app import INITIALIZE
from tests.support.weather_server import WeatherServer, run_weather_server

__all__ = [
    "Flow",
    "LiveAuth",
    "Stack",
    "assert_oauth_error",
    "live_auth",
    "mcp_post",
    "pkce",
    "query_of",
    "run_stack",
]

REDIRECT = "http://127.0.0.1:9/callback"
MCP_ACCEPT = "application/json, text/event-stream"


@dataclass(frozen=True)
class Stack:
    """A running oauth.py and weather.py; `foreign` is a second resource the AS also serves."""

    oauth: OAuthServer
    weather: WeatherServer
    foreign: str


@contextlib.contextmanager
def run_stack(
    tmp_path: Path,
    *,
    oauth_env: Mapping[str, str] | None = None,
    weather_env: Mapping[str, str] | None = None,
    cache_ttl: float = 1.0,
    weather_args: tuple[str, ...] = (),
    nws_replay: bool = True,
    oauth_port: int | None = None,
) -> Iterator[Stack]:
    """oauth.py (two resources: weather's and a foreign one) and weather.py (replayed NWS)."""
    port = free_port()
    resource, foreign = f"http://127.0.0.1:{port}/mcp", f"http://127.0.0.1:{free_port()}/mcp"
    with (
        run_oauth_server(
            tmp_path, resources=[resource, foreign], extra_env=oauth_env, port=oauth_port
        ) as oauth,
        run_weather_server(
            tmp_path,
            auth_server=oauth.issuer,
            oauth_data_dir=oauth.data_dir,
            port=port,
            nws_replay=nws_replay,
            extra_env=weather_env,
            extra_args=("--introspection-cache-ttl", str(cache_ttl), *weather_args),
        ) as weather,
    ):
        yield Stack(oauth, weather, foreign)


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One oauth.py + weather.py with `run_stack`'s defaults (and machine clients enabled),
    shared by every test that needs nothing else: started at first use, stopped at the end."""
    env = {"OAUTH_INITIAL_ACCESS_TOKEN": INITIAL_ACCESS_TOKEN}
    with run_stack(tmp_path_factory.mktemp("live-stack"), oauth_env=env) as running:
        yield running
        assert "Traceback" not in running.oauth.program.output()


@dataclass
class LiveAuth:
    """A browser-like HTTP client (its own cookie jar) talking to a real oauth.py."""

    oauth: OAuthServer
    http: httpx2.AsyncClient
    resource: str

    async def register(self, **metadata: Any) -> dict[str, Any]:
        """Register a public native client (refresh allowed, loopback redirect by default)."""
        body = {
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "application_type": "native",
            "client_name": "attack suite",
            **metadata,
        }
        response = await self.http.post(f"{self.oauth.issuer}/register", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def authorization_url(self, flow: Flow, **overrides: str | None) -> str:
        """The authorization request URL for `flow`; an override of None drops the parameter."""
        return (
            f"{self.oauth.issuer}/authorize?{authorization_query(flow, self.resource, **overrides)}"
        )

    async def authorize(self, flow: Flow, **overrides: str | None) -> str:
        """Sign in and allow headlessly; keep the code in `flow`; return the final Location."""
        location = await authorize_headlessly(
            self.http,
            self.authorization_url(flow, **overrides),
            username=self.oauth.username,
            password=self.oauth.password,
        )
        flow.code = query_of(location).get("code", "")
        return location

    async def start(self, **metadata: Any) -> Flow:
        """Register a client; its flow (fresh PKCE pair and state), not yet authorized."""
        verifier, challenge = pkce()
        client = await self.register(**metadata)
        return Flow(client, verifier, challenge, redirect_uri=client["redirect_uris"][0])

    async def new_flow(self, **metadata: Any) -> Flow:
        """Register a client and complete its authorization (a code, not yet redeemed)."""
        flow = await self.start(**metadata)
        await self.authorize(flow)
        return flow

    async def token(self, data: Mapping[str, str], **kwargs: Any) -> httpx2.Response:
        """POST /token with form `data`."""
        return await self.http.post(f"{self.oauth.issuer}/token", data=dict(data), **kwargs)

    async def redeem(self, flow: Flow, **overrides: str | None) -> httpx2.Response:
        """Exchange the flow's code; an override of None drops the parameter."""
        return await self.token(code_form(flow, self.resource, **overrides))

    async def tokens(self, **metadata: Any) -> tuple[Flow, dict[str, Any]]:
        """A fresh client's flow and its token response (asserted 200)."""
        flow = await self.new_flow(**metadata)
        response = await self.redeem(flow)
        assert response.status_code == 200, response.text
        return flow, dict(response.json())

    async def refresh(self, flow: Flow, refresh_token: str, **extra: str) -> httpx2.Response:
        """The refresh_token grant for `flow`'s client."""
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return await self.token({**data, "client_id": flow.client["client_id"], **extra})

    async def revoke(self, flow: Flow, token: str) -> httpx2.Response:
        """RFC 7009 revocation as `flow`'s (public) client."""
        data = {"token": token, "client_id": flow.client["client_id"]}
        return await self.http.post(f"{self.oauth.issuer}/revoke", data=data)

    def resource_auth(self, resource: str | None = None) -> tuple[str, str]:
        """A resource server's introspection credentials, from the AS data folder."""
        cred = load_all(self.oauth.data_dir)[resource or self.resource]
        return cred.client_id, cred.client_secret

    async def introspect(self, token: str, resource: str | None = None) -> dict[str, Any]:
        """Introspect `token` as the resource server of `resource` (asserted 200)."""
        response = await self.http.post(
            f"{self.oauth.issuer}/introspect",
            data={"token": token},
            auth=self.resource_auth(resource),
        )
        assert response.status_code == 200, response.text
        return dict(response.json())


@contextlib.asynccontextmanager
async def live_auth(oauth: OAuthServer, resource: str) -> AsyncIterator[LiveAuth]:
    """A `LiveAuth` with a fresh cookie jar, closed at block end."""
    async with httpx2.AsyncClient(timeout=15) as http:
        yield LiveAuth(oauth, http, resource)


def assert_oauth_error(response: httpx2.Response, status: int, error: str) -> None:
    """`response` is an RFC 6749 5.2 error with this status and code, never cached."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert isinstance(body.get("error_description", ""), str)
    assert response.headers["cache-control"] == "no-store"


async def mcp_post(
    url: str,
    token: str | None,
    *,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    seconds: float = 15.0,
) -> httpx2.Response:
    """POST a JSON-RPC message (initialize by default) to the MCP endpoint, with a bearer token."""
    sent = {"accept": MCP_ACCEPT}
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    sent.update(headers or {})
    async with httpx2.AsyncClient(timeout=seconds) as http:
        return await http.post(url, json=INITIALIZE if body is None else body, headers=sent)


def assert_invalid_token(response: httpx2.Response) -> None:
    """RFC 6750 3.1: 401 with a Bearer challenge carrying `invalid_token`."""
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert "resource_metadata=" in challenge
