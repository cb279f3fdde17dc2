"""The weather app in process: a fake RFC 7662 authorization server, settings, an ASGI client.

`FakeIntrospectionServer` is the authorization server as weather.py sees it (metadata,
introspection, JWKS); the client tests' `FakeAuthServer`
(tests/support/client_fakes.py) is the one the client signs in with.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
from joserfc import jwt
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from secure_mcp.common import token_format
from secure_mcp.common.resource_credentials import ResourceCredentials
from secure_mcp.weather.app import Seams, build_app
from secure_mcp.weather.settings import WeatherSettings

ISSUER = "http://localhost:8003"
RESOURCE = "http://127.0.0.1:8000/mcp"
ORIGIN = "http://127.0.0.1:8000"
CREDENTIALS = ResourceCredentials("weather-rs", "rs-secret")


def access_token(name: str) -> str:
    """A well-formed access token (oauth.py's prefix and checksum) named after `name`."""
    body = base64.urlsafe_b64encode(hashlib.sha256(name.encode()).digest()).rstrip(b"=")
    return token_format.assemble(token_format.ACCESS_PREFIX, body.decode())


@dataclass
class FakeIntrospectionServer:
    """Metadata plus an introspection endpoint answering from `tokens`; can be switched off."""

    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    introspections: int = 0
    metadata_fetches: int = 0
    jwks_fetches: int = 0
    down: bool = False
    delay: float = 0.0  # seconds each request takes (lets concurrent requests meet)
    metadata: dict[str, Any] = field(
        default_factory=lambda: {
            "issuer": ISSUER,
            "introspection_endpoint": f"{ISSUER}/introspect",
            "jwks_uri": f"{ISSUER}/jwks",
        }
    )
    signing_keys: list[ECKey] = field(default_factory=lambda: [new_signing_key()])
    published: list[dict[str, Any]] | None = None  # the JWKS served (default: signing_keys)

    def jwt(
        self, key: ECKey | None = None, header: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        """An RFC 9068 access token for our resource (claims override, None drops one)."""
        key = key or self.signing_keys[-1]
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": RESOURCE,
            "exp": now + 300,
            "iat": now,
            "jti": f"jti-{now}-{len(self.tokens)}-{id(claims)}",
            "client_id": "client-1",
            "sub": "demo",
            "scope": "weather:read",
            **claims,
        }
        head = {"alg": "ES256", "typ": "at+jwt", "kid": key.kid, **(header or {})}
        kept = {k: v for k, v in body.items() if v is not None}
        return jwt.encode({k: v for k, v in head.items() if v is not None}, kept, key)

    async def _jwks(self, request: Request) -> Response:
        self.jwks_fetches += 1
        keys = self.published
        if keys is None:
            keys = [k.as_dict(private=False, use="sig", alg="ES256") for k in self.signing_keys]
        return JSONResponse({"keys": keys})

    def grant(self, name: str, **claims: Any) -> str:
        """Register an active token for our resource (claims override the defaults); return it.

        `name` is a readable label: the token is the well-formed `access_token(name)`.
        """
        token = access_token(name)
        now = int(time.time())
        self.tokens[token] = {
            "active": True,
            "aud": RESOURCE,
            "scope": "weather:read",
            "client_id": "client-1",
            "sub": "demo",
            "exp": now + 600,
            "iat": now,
            "iss": ISSUER,
            "token_type": "Bearer",
            **claims,
        }
        return token

    async def _metadata(self, request: Request) -> Response:
        self.metadata_fetches += 1
        return JSONResponse(self.metadata)

    async def _introspect(self, request: Request) -> Response:
        expected = base64.b64encode(b"weather-rs:rs-secret").decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        self.introspections += 1
        form = await request.form()
        claims = self.tokens.get(str(form.get("token")))
        return JSONResponse(claims if claims else {"active": False})

    def app(self) -> Starlette:
        """The ASGI app."""
        return Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server", self._metadata),
                Route("/introspect", self._introspect, methods=["POST"]),
                Route("/jwks", self._jwks),
            ]
        )

    def transport(self) -> httpx2.MockTransport:
        """A transport that fails to connect while `down`, else serves `app()` in process."""
        inner = httpx2.ASGITransport(app=self.app())

        async def handle(request: httpx2.Request) -> httpx2.Response:
            await asyncio.sleep(self.delay)
            if self.down:
                raise httpx2.ConnectError("connection refused", request=request)
            return await inner.handle_async_request(request)

        return httpx2.MockTransport(handle)


def new_signing_key() -> ECKey:
    """A P-256 key with its thumbprint as kid, as oauth.py makes them."""
    key = ECKey.generate_key("P-256", private=True)
    key.ensure_kid()
    return key


def make_settings(**overrides: Any) -> WeatherSettings:
    """Settings for in-process tests (replay NWS, our fake issuer and credentials)."""
    values: dict[str, Any] = {
        "auth_server": ISSUER,
        "resource_url": RESOURCE,
        "nws_replay": True,
        "credentials": CREDENTIALS,
        **overrides,
    }
    return WeatherSettings(**values)


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[httpx2.AsyncClient]:
    """A client to `app`, its lifespan run in its own task (fixture setup and teardown differ)."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        async with app.router.lifespan_context(app):
            started.set()
            await stop.wait()

    task = asyncio.create_task(run())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        await task
    try:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=ORIGIN) as client:
            yield client
    finally:
        stop.set()
        await task


PRM = f"{ORIGIN}/.well-known/oauth-protected-resource/mcp"
CHALLENGE = f'Bearer resource_metadata="{PRM}", scope="weather:read"'
INVALID_TOKEN = (
    f'{CHALLENGE}, error="invalid_token", error_description="The access token is invalid, '
    'expired, revoked or not issued for this server."'
)
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}


async def post_mcp(
    client: httpx2.AsyncClient, token: str | None, extra: dict[str, str] | None = None
) -> httpx2.Response:
    """POST an initialize request to /mcp with `token` as the bearer credential."""
    headers = {**MCP_HEADERS, **(extra or {})}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return await client.post("/mcp", json=INITIALIZE, headers=headers)


@contextlib.asynccontextmanager
async def weather_app(
    auth_server: FakeIntrospectionServer, **overrides: Any
) -> AsyncIterator[Starlette]:
    """The weather app with `overrides` to its settings, its lifespan running."""
    seams = Seams(introspection_transport=auth_server.transport())
    app = build_app(make_settings(**overrides), seams=seams)
    async with serving(app):
        yield app


async def post_from(app: Starlette, token: str, address: str = "127.0.0.1") -> httpx2.Response:
    """POST initialize with `token` from the client address `address`."""
    transport = httpx2.ASGITransport(app=app, client=(address, 5000))
    async with httpx2.AsyncClient(transport=transport, base_url=ORIGIN) as http:
        return await post_mcp(http, token)
