"""Test helpers: register a client, build an authorization URL, run the whole flow in process."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
from starlette.applications import Starlette

from secure_mcp.common.resource_credentials import load_all
from secure_mcp.oauth.settings import OAuthSettings
from tests.support.headless import authorize_headlessly
from tests.support.oauth_server import TEST_PASSWORD, TEST_USERNAME, running_oauth_app

RESOURCE = "http://127.0.0.1:8000/mcp"
REDIRECT = "http://127.0.0.1:33333/callback"


def pkce() -> tuple[str, str]:
    """A fresh (verifier, S256 challenge) pair."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def query_of(url: str) -> dict[str, str]:
    """The query parameters of `url` (single values)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@dataclass
class Flow:
    """One authorization: the client, PKCE pair, state and the resulting code."""

    client: dict[str, Any]
    verifier: str
    challenge: str
    state: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    redirect_uri: str = REDIRECT
    code: str = ""


def authorization_query(flow: Flow, resource: str, /, **overrides: str | None) -> str:
    """The authorization request's query for `flow`; an override of None drops the parameter."""
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": flow.client["client_id"],
        "redirect_uri": flow.redirect_uri,
        "code_challenge": flow.challenge,
        "code_challenge_method": "S256",
        "state": flow.state,
        "resource": resource,
        "scope": "weather:read",
        **overrides,
    }
    return urlencode({k: v for k, v in params.items() if v is not None})


def code_form(flow: Flow, resource: str = RESOURCE, /, **overrides: str | None) -> dict[str, str]:
    """The code exchange form for `flow`; an override of None drops the parameter."""
    data: dict[str, str | None] = {
        "grant_type": "authorization_code",
        "code": flow.code,
        "redirect_uri": flow.redirect_uri,
        "code_verifier": flow.verifier,
        "client_id": flow.client["client_id"],
        "resource": resource,
        **overrides,
    }
    return {k: v for k, v in data.items() if v is not None}


@dataclass
class Harness:
    """The in-process server, its settings, and a browser-like HTTP client."""

    app: Starlette
    settings: OAuthSettings
    http: httpx2.AsyncClient

    async def register(self, **metadata: Any) -> dict[str, Any]:
        """Register a client (public, with refresh, loopback redirect by default)."""
        body = {
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "Test client",
            **metadata,
        }
        response = await self.http.post("/register", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def authorization_url(self, flow: Flow, **overrides: str | None) -> str:
        """The authorization request URL for `flow`; an override of None drops the parameter."""
        return (
            f"{self.settings.issuer}/authorize?{authorization_query(flow, RESOURCE, **overrides)}"
        )

    async def authorize(self, flow: Flow, decision: str = "allow", **overrides: str | None) -> str:
        """Sign in and decide headlessly; store the code in `flow`; return the final Location."""
        location = await authorize_headlessly(
            self.http,
            self.authorization_url(flow, **overrides),
            username=TEST_USERNAME,
            password=TEST_PASSWORD,
            decision=decision,
        )
        flow.code = query_of(location).get("code", "")
        return location

    async def new_flow(self, **metadata: Any) -> Flow:
        """Register a client and complete its authorization."""
        verifier, challenge = pkce()
        flow = Flow(await self.register(**metadata), verifier, challenge)
        await self.authorize(flow)
        return flow

    async def token(self, data: dict[str, str], **kwargs: Any) -> httpx2.Response:
        """POST /token with form `data`."""
        return await self.http.post("/token", data=data, **kwargs)

    async def redeem(self, flow: Flow, **overrides: str) -> httpx2.Response:
        """Exchange the flow's code for tokens."""
        return await self.token(code_form(flow, RESOURCE, **overrides))

    def resource_auth(self, resource: str = RESOURCE) -> tuple[str, str]:
        """The resource server's introspection credentials from the data folder."""
        cred = load_all(self.settings.data_dir)[resource]
        return cred.client_id, cred.client_secret

    async def introspect(self, token: str, resource: str = RESOURCE) -> dict[str, Any]:
        """Introspect `token` as the resource server of `resource`."""
        response = await self.http.post(
            "/introspect", data={"token": token}, auth=self.resource_auth(resource)
        )
        assert response.status_code == 200, response.text
        return dict(response.json())


@asynccontextmanager
async def running_harness(tmp_path: Path, **overrides: Any) -> AsyncIterator[Harness]:
    """`running_oauth_app(tmp_path, **overrides)` and a client whose cookies persist."""
    async with running_oauth_app(tmp_path, **overrides) as (app, settings):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=settings.issuer) as http:
            yield Harness(app, settings, http)


def segment(token: str, index: int) -> dict[str, Any]:
    """One decoded JSON part of a compact JWS (no verification)."""
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, html
    return match.group(1)


def form(page: httpx2.Response, **extra: str) -> dict[str, str]:
    return {"csrf_token": hidden(page.text, "csrf_token"), "tx": hidden(page.text, "tx"), **extra}


async def login_page(oauth: Harness, flow: Flow) -> httpx2.Response:
    page = await oauth.http.get(oauth.authorization_url(flow))
    assert page.status_code == 200, page.text
    assert 'name="password"' in page.text
    return page


async def sign_in(oauth: Harness, page: httpx2.Response) -> httpx2.Response:
    response = await oauth.http.post(
        "/authorize", data=form(page, username=TEST_USERNAME, password=TEST_PASSWORD)
    )
    assert response.status_code == 303, response.text
    return response


async def consent_page(oauth: Harness, flow: Flow) -> httpx2.Response:
    signed_in = await sign_in(oauth, await login_page(oauth, flow))
    page = await oauth.http.get(signed_in.headers["location"])
    assert 'name="decision"' in page.text, page.text
    return page
