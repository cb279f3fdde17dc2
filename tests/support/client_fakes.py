"""Conformance-style servers for the client's OAuth tests, served in process through httpx2."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from secure_mcp.client.auth.storage import STATE_FILE

AS_ORIGIN = "http://127.0.0.1:9000"
RS_ORIGIN = "http://127.0.0.1:8000"
RS_URL = f"{RS_ORIGIN}/mcp"


@dataclass
class Grant:
    """What an issued token stands for."""

    client_id: str
    scope: str
    resource: str | None
    expires_at: float


@dataclass
class FakeAuthServer:
    """An RFC 8414/7591/7636/9207/7009 authorization server with knobs for misbehaviour."""

    issuer: str = AS_ORIGIN
    origin: str = AS_ORIGIN
    metadata_issuer: str | None = None  # publish this issuer instead (a mix-up)
    grantable: set[str] | None = None  # grant only these scopes (None: whatever is asked)
    metadata_at: str = "oauth-authorization-server"  # or "openid-configuration"
    path_style: str = "inserted"  # for an issuer with a path: "inserted" or "appended"
    methods: list[str] | None = field(default_factory=lambda: ["S256"])
    iss_supported: bool = True
    cimd_supported: bool = False
    scopes_supported: list[str] = field(default_factory=lambda: ["weather:read", "weather:admin"])
    access_ttl: int = 3600
    iss_override: str | None = None  # send this iss instead of the issuer
    state_override: str | None = None
    omit_iss: bool = False
    refuse: str | None = None  # redirect with this error instead of a code
    refresh_works: bool = True
    known_clients_only: bool = False  # /authorize, /token, /revoke refuse unregistered clients
    registrations: dict[str, dict[str, Any]] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, Grant] = field(default_factory=dict)
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)
    revoked: list[tuple[str, str]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    authorize_params: list[dict[str, str]] = field(default_factory=list)

    def forget(self) -> None:
        """Lose every registration, code and token, as a server whose data folder was deleted."""
        self.registrations.clear()
        self.codes.clear()
        self.tokens.clear()
        self.refresh_tokens.clear()

    def _unknown(self, client_id: object) -> bool:
        return self.known_clients_only and client_id not in self.registrations

    def metadata(self) -> dict[str, Any]:
        """The RFC 8414 document."""
        doc: dict[str, Any] = {
            "issuer": self.metadata_issuer or self.issuer,
            "authorization_endpoint": f"{self.origin}/authorize",
            "token_endpoint": f"{self.origin}/token",
            "registration_endpoint": f"{self.origin}/register",
            "revocation_endpoint": f"{self.origin}/revoke",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": self.scopes_supported,
            "authorization_response_iss_parameter_supported": self.iss_supported,
        }
        if self.methods is not None:
            doc["code_challenge_methods_supported"] = self.methods
        if self.cimd_supported:
            doc["client_id_metadata_document_supported"] = True
        return doc

    def metadata_path(self) -> str:
        """Where the metadata document is served."""
        path = urlsplit(self.issuer).path.rstrip("/")
        if path and self.path_style == "appended":
            return f"{path}/.well-known/{self.metadata_at}"
        return f"/.well-known/{self.metadata_at}{path}"

    def app(self) -> Starlette:
        """The Starlette app."""

        async def metadata(request: Request) -> Response:
            self.log.append(f"GET {request.url.path}")
            if request.url.path != self.metadata_path():
                return JSONResponse({"error": "not_found"}, status_code=404)
            return JSONResponse(self.metadata())

        return Starlette(
            routes=[
                Route("/register", self._register, methods=["POST"]),
                Route("/authorize", self._authorize),
                Route("/token", self._token, methods=["POST"]),
                Route("/revoke", self._revoke, methods=["POST"]),
                Route("/{path:path}", metadata),
            ]
        )

    async def _register(self, request: Request) -> Response:
        body = await request.json()
        self.log.append("POST /register")
        client_id = f"client-{secrets.token_hex(4)}"
        record = {**body, "client_id": client_id, "client_id_issued_at": int(time.time())}
        self.registrations[client_id] = record
        return JSONResponse(record, status_code=201)

    async def _authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        if self._unknown(params.get("client_id")):  # RFC 6749 4.1.2.1: a page, no redirect
            self.log.append("GET /authorize (unknown client)")
            return Response("The application (client_id) is not registered here.", 400)
        if self.grantable is not None and "scope" in params:
            params["scope"] = " ".join(s for s in params["scope"].split() if s in self.grantable)
        self.authorize_params.append(params)
        self.log.append("GET /authorize")
        query: dict[str, str] = {"state": self.state_override or params["state"]}
        if not self.omit_iss:
            query["iss"] = self.iss_override or self.issuer
        if self.refuse:
            query["error"] = self.refuse
        else:
            code = secrets.token_urlsafe(16)
            self.codes[code] = params
            query["code"] = code
        return RedirectResponse(f"{params['redirect_uri']}?{urlencode(query)}", status_code=302)

    def _issue(self, client_id: str, scope: str, resource: str | None) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        grant = Grant(client_id, scope, resource, time.time() + self.access_ttl)
        self.tokens[access] = grant
        self.refresh_tokens[refresh] = grant
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
            "refresh_token": refresh,
            "scope": scope,
        }

    async def _token(self, request: Request) -> Response:
        form = dict(await request.form())
        self.log.append(f"POST /token {form['grant_type']}")
        if self._unknown(form.get("client_id")):  # RFC 6749 5.2
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form["grant_type"] == "refresh_token":
            grant = self.refresh_tokens.pop(str(form["refresh_token"]), None)
            if grant is None or not self.refresh_works:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            if grant.client_id != form.get("client_id", grant.client_id):  # RFC 6749 6
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            return JSONResponse(self._issue(grant.client_id, grant.scope, grant.resource))
        params = self.codes.pop(str(form["code"]), None)
        if params is None or params["redirect_uri"] != form["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        digest = hashlib.sha256(str(form["code_verifier"]).encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        if challenge != params["code_challenge"] or form.get("resource") != params.get("resource"):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return JSONResponse(
            self._issue(str(form["client_id"]), params.get("scope", ""), params.get("resource"))
        )

    async def _revoke(self, request: Request) -> Response:
        form = dict(await request.form())
        if self._unknown(form.get("client_id")):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token = str(form["token"])
        self.revoked.append((str(form.get("token_type_hint")), token))
        self.tokens.pop(token, None)
        self.refresh_tokens.pop(token, None)
        return Response(status_code=200)

    def grant_for(self, token: str) -> Grant | None:
        """The live grant behind an access token."""
        grant = self.tokens.get(token)
        return grant if grant and grant.expires_at > time.time() else None


@dataclass
class FakeResource:
    """A bare RFC 9728 protected resource at /mcp (no MCP), with knobs for discovery."""

    server: FakeAuthServer
    prm_at: str = "inserted"  # "inserted", "root", "header" (only via WWW-Authenticate), "none"
    resource: str = RS_URL
    challenge_scope: str | None = "weather:read"
    scopes_supported: list[str] | None = field(
        default_factory=lambda: ["weather:read", "weather:admin"]
    )
    needs: set[str] = field(default_factory=set)  # scopes /mcp asks for beyond the challenge
    status: int | None = None  # answer /mcp with this status, no questions asked
    accept_tokens: bool = True

    def prm(self) -> dict[str, Any]:
        """The RFC 9728 document."""
        doc: dict[str, Any] = {
            "resource": self.resource,
            "authorization_servers": [self.server.issuer],
        }
        if self.scopes_supported is not None:
            doc["scopes_supported"] = self.scopes_supported
        return doc

    def prm_path(self) -> str | None:
        """Where the PRM document is served."""
        paths = {
            "inserted": "/.well-known/oauth-protected-resource/mcp",
            "root": "/.well-known/oauth-protected-resource",
            "header": "/metadata/prm.json",
        }
        return paths.get(self.prm_at)

    def challenge(self, error: str | None = None, scope: str | None = None) -> str:
        """A WWW-Authenticate Bearer challenge."""
        parts = []
        if error:
            parts.append(f'error="{error}"')
        if scope:
            parts.append(f'scope="{scope}"')
        if self.prm_at == "header":
            parts.append(f'resource_metadata="{RS_ORIGIN}/metadata/prm.json"')
        return "Bearer " + ", ".join(parts) if parts else "Bearer"

    def app(self) -> Starlette:
        """The Starlette app."""

        async def endpoint(request: Request) -> Response:
            if request.url.path == self.prm_path():
                return JSONResponse(self.prm())
            if request.url.path != "/mcp":
                return JSONResponse({"error": "not_found"}, status_code=404)
            if self.status is not None:
                return JSONResponse({"error": "as configured"}, status_code=self.status)
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            grant = self.server.grant_for(token) if self.accept_tokens else None
            if grant is None or grant.resource != RS_URL:
                headers = {"WWW-Authenticate": self.challenge(None, self.challenge_scope)}
                return JSONResponse({"error": "invalid_token"}, status_code=401, headers=headers)
            missing = self.needs - set(grant.scope.split())
            if missing:
                scope = " ".join(sorted(missing))
                headers = {"WWW-Authenticate": self.challenge("insufficient_scope", scope)}
                return JSONResponse(
                    {"error": "insufficient_scope"}, status_code=403, headers=headers
                )
            return JSONResponse({"ok": True, "scope": grant.scope})

        return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])


class FakeVerifier:
    """TokenVerifier over the fake authorization server's token table."""

    def __init__(self, server: FakeAuthServer) -> None:
        self.server = server

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's grant, or None."""
        grant = self.server.grant_for(token)
        if grant is None:
            return None
        return AccessToken(
            token=token,
            client_id=grant.client_id,
            scopes=grant.scope.split(),
            expires_at=int(grant.expires_at),
            resource=grant.resource,
        )


def weather_mcp(
    server: FakeAuthServer, required: list[str] | None = None, resource_url: str = RS_URL
) -> MCPServer:
    """A protected MCP server with one tool, trusting the fake authorization server."""
    mcp = MCPServer(
        "fake-weather",
        token_verifier=FakeVerifier(server),
        auth=AuthSettings(
            issuer_url=server.issuer,  # type: ignore[arg-type]
            resource_server_url=resource_url,  # type: ignore[arg-type]
            required_scopes=required or ["weather:read"],
            validate_token_resource=True,
        ),
    )

    @mcp.tool()
    def get_alerts(state: str) -> str:
        """Alerts for a US state."""
        return f"No alerts in {state}"

    return mcp


class Router(httpx2.AsyncBaseTransport):
    """Send each request to the in-process app of its origin; others cannot be reached."""

    def __init__(self, apps: dict[str, Any]) -> None:
        self.transports = {origin: httpx2.ASGITransport(app=app) for origin, app in apps.items()}
        self.requests: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Route by scheme://host:port."""
        origin = f"{request.url.scheme}://{request.url.netloc.decode()}"
        self.requests.append(f"{request.method} {request.url}")
        transport = self.transports.get(origin)
        if transport is None:
            raise httpx2.ConnectError(f"no route to {origin}", request=request)
        return await transport.handle_async_request(request)


@asynccontextmanager
async def running(mcp: MCPServer, server: FakeAuthServer):  # type: ignore[no-untyped-def]
    """A Router serving the MCP server (with its session manager running) and the AS."""
    app = mcp.streamable_http_app(json_response=True, stateless_http=True)
    async with mcp.session_manager.run():
        yield Router({RS_ORIGIN: app, AS_ORIGIN: server.app()})


def redirect_query(location: str) -> dict[str, str]:
    """The query of a redirect Location."""
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def expire_stored_tokens(state_dir: Path) -> None:
    """Move every stored access token's expiry into the past."""
    path = state_dir / STATE_FILE
    state = json.loads(path.read_text())
    for per_resource in state["tokens"].values():
        for entry in per_resource.values():
            entry["expires_at"] = time.time() - 60
    path.write_text(json.dumps(state))
