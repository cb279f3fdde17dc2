"""Assemble the weather server: MCP tools, bearer gate, RFC 9728 metadata, health."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.routes import cors_middleware
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import DEFAULT_MAX_REQUEST_BODY_SIZE
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.auth import ProtectedResourceMetadata
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from secure_mcp.common import token_format
from secure_mcp.common.body_guard import BodyGuardMiddleware
from secure_mcp.common.dpop_replay import MemoryReplayCache, ReplayCache, SqliteReplayCache
from secure_mcp.common.hosts import HostCheckMiddleware
from secure_mcp.common.metrics import METRICS_PATH, Metrics, MetricsMiddleware
from secure_mcp.common.ratelimit import MemoryLimiter
from secure_mcp.common.resource_credentials import ResourceCredentials
from secure_mcp.common.rfc9449 import ALGORITHMS as DPOP_ALGORITHMS
from secure_mcp.common.rfc9449 import Nonces
from secure_mcp.common.settings import SettingsError
from secure_mcp.common.uris import LOOPBACK_NAMES, host_port
from secure_mcp.weather.bearer import BearerAuthMiddleware
from secure_mcp.weather.dpop import ResourceProofs
from secure_mcp.weather.nws import NwsClient, Sleep
from secure_mcp.weather.permissions import ToolPermissions, ToolScopeMiddleware
from secure_mcp.weather.replay import SUMMARY, hide_replayed_requests, replay_transport
from secure_mcp.weather.rfc7662 import IntrospectionVerifier
from secure_mcp.weather.settings import (
    WILDCARD_HOSTS,
    WeatherSettings,
    reread_credentials,
)
from secure_mcp.weather.tools import TOOL_NAMES, register_tools
from secure_mcp.weather.verifier import AccessTokenVerifier

HEALTH_PATH = "/health"
INSECURE_HTTP_WARNING = (
    "weather: WARNING: --allow-insecure-http / WEATHER_ALLOW_INSECURE_HTTP is on: the resource",
    "weather: URL or the authorization server may be plain http off loopback, so bearer tokens",
    "weather: and introspection credentials cross the network unencrypted. Development only.",
)
MAX_BODY = DEFAULT_MAX_REQUEST_BODY_SIZE  # 4 MiB: the SDK's 413 and our body guard agree


@dataclass(frozen=True)
class Seams:
    """Test and benchmark seams: upstream transports and the retry sleep."""

    nws_transport: httpx2.AsyncBaseTransport | None = None
    introspection_transport: httpx2.AsyncBaseTransport | None = None
    nws_sleep: Sleep | None = None


def transport_security(settings: WeatherSettings) -> TransportSecuritySettings:
    """DNS-rebinding protection: only our own Host and Origin values are accepted."""
    hosts = {f"{settings.host}:{settings.port}", urlsplit(settings.resource_url).netloc}
    if settings.host in LOOPBACK_NAMES | WILDCARD_HOSTS:
        hosts |= {host_port(name, settings.port) for name in LOOPBACK_NAMES}
    origins = {f"http://{h}" for h in hosts} | {f"https://{h}" for h in hosts}
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=sorted(hosts),
        allowed_origins=sorted(origins),
    )


def protected_resource_metadata(settings: WeatherSettings) -> dict[str, Any]:
    """RFC 9728 section 2 metadata; `resource` and the issuer exactly as configured."""
    metadata = ProtectedResourceMetadata.model_validate(
        {
            "resource": settings.resource_url,
            "authorization_servers": [settings.auth_server],
            "scopes_supported": list(settings.scopes.all_scopes),
            "bearer_methods_supported": ["header"],  # RFC 9728 2: never the query string
            "resource_name": "Weather MCP server",
            "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),  # RFC 9728 2
            "dpop_bound_access_tokens_required": settings.require_dpop,
        }
    )
    data: dict[str, Any] = metadata.model_dump(mode="json", exclude_none=True)
    return data


def app_metrics(settings: WeatherSettings) -> Metrics | None:
    """This app's metrics (`--metrics`), summed over workers with several; None when off."""
    if not settings.metrics:
        return None
    endpoints = [settings.mcp_path, HEALTH_PATH, urlsplit(settings.resource_metadata_url).path]
    return Metrics("weather", endpoints, settings.metrics_dir, per_worker=True)


def _observer(metrics: Metrics | None) -> Callable[[str], None] | None:
    """Counts introspections by outcome and introspection cache hits."""
    if metrics is None:
        return None
    calls = metrics.counter(
        "introspections", "Introspection requests by outcome (active, inactive, unavailable)",
        ("outcome",),
    )  # fmt: skip
    hits = metrics.counter("introspection_cache_hits", "Tokens answered from the cache")

    def observe(event: str) -> None:
        (hits if event == "cache_hit" else calls.labels(event)).inc()

    return observe


def _verifier(
    settings: WeatherSettings, seams: Seams, metrics: Metrics | None = None
) -> AccessTokenVerifier:
    """JWTs checked here, other tokens introspected (which needs this server's credentials)."""
    if settings.credentials is None:
        raise SettingsError("introspection credentials are required when auth is on")
    reload = None
    if settings.credentials_reloadable:  # refused after oauth.py's reset: read them again

        def reload() -> ResourceCredentials | None:
            return reread_credentials(settings.oauth_data_dir, settings.resource_url)

    introspection = IntrospectionVerifier(
        issuer=settings.auth_server,
        resource=settings.resource_url,
        credentials=settings.credentials,
        cache_ttl=settings.introspection_cache_ttl,
        cache_size=settings.introspection_cache_size,
        transport=seams.introspection_transport,
        well_formed=_well_formed if settings.local_token_check else None,
        reload_credentials=reload,
        observe=_observer(metrics),
    )
    return AccessTokenVerifier(
        introspection,
        jwks_ttl=settings.jwks_cache_ttl,
        introspect_jwt=settings.introspect_jwt,
        any_format=not settings.local_token_check,
        allow_insecure_http=settings.allow_insecure_http,
        cache_size=settings.introspection_cache_size,
    )


def _well_formed(token: str) -> bool:
    """oauth.py's access tokens: prefix and checksum right, else refused without introspection."""
    return token_format.well_formed(token, token_format.ACCESS_PREFIX)


def _nws(settings: WeatherSettings, seams: Seams) -> NwsClient:
    """The NWS client: the recordings in replay mode, else the live API (or a test seam)."""
    transport = seams.nws_transport
    if settings.nws_replay:
        transport = replay_transport()
        hide_replayed_requests(settings.nws_base)  # nothing is sent there: no log says it was
    if seams.nws_sleep is None:
        return NwsClient(settings.nws_base, settings.nws_user_agent, transport=transport)
    return NwsClient(
        settings.nws_base, settings.nws_user_agent, transport=transport, sleep=seams.nws_sleep
    )


def _mcp_server(settings: WeatherSettings, require_auth: bool) -> MCPServer[Any]:
    """The SDK server, with the permissions per tool enforced inside it (`ToolPermissions`).

    The SDK's own bearer middleware is not used: it would only re-read the verdict of our gate
    (a second lookup of the same token) at a measured cost of about a tenth of a millisecond
    per request; `RequireVerified` keeps the defence in depth for a fraction of that.
    """
    scopes = settings.scopes
    return MCPServer(
        "weather",
        instructions="US weather alerts and forecasts (NWS).",
        middleware=[ToolPermissions(scopes)] if require_auth and scopes.per_tool else None,
    )


class RequireVerified:
    """Defence in depth in front of the MCP server: no request gets in that our gate did not
    verify (a route or middleware change that bypassed it would be refused here, 401)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not isinstance(scope.get("user"), AuthenticatedUser):
            await JSONResponse({"error": "invalid_token"}, status_code=401)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def health(request: Request) -> Response:
    """Readiness for humans and orchestrators: no auth, no secrets."""
    return JSONResponse({"status": "ok"})


async def no_stream(request: Request) -> Response:
    """405 for GET: stateless MCP has no stream to listen on (MCP transports, "Listening")."""
    # The SDK would open an SSE stream that never carries anything and holds the connection.
    error = {"code": -32000, "message": "Method Not Allowed: this server is stateless; POST only"}
    body = {"jsonrpc": "2.0", "id": None, "error": error}
    return JSONResponse(body, status_code=405, headers={"allow": "POST"})


def _metadata_route(settings: WeatherSettings) -> Route:
    """RFC 9728 section 3.1: metadata at the path-inserted well-known URI (CORS for browsers)."""
    document = protected_resource_metadata(settings)
    return Route(
        urlsplit(settings.resource_metadata_url).path,
        cors_middleware(lambda _: JSONResponse(document), ["GET", "OPTIONS"]),
        methods=["GET", "OPTIONS"],
    )


def _host_check(settings: WeatherSettings) -> Middleware:
    """DNS rebinding: Host and Origin checked first, before the token (the SDK checks again)."""
    security = transport_security(settings)
    return Middleware(
        HostCheckMiddleware,
        allowed=frozenset(host.lower() for host in security.allowed_hosts),
        url=settings.resource_url,
        origins=frozenset(origin.lower() for origin in security.allowed_origins),
        open_paths=[HEALTH_PATH, urlsplit(settings.resource_metadata_url).path],  # CORS: any
    )


def _proofs(settings: WeatherSettings) -> tuple[ResourceProofs, ReplayCache]:
    """The DPoP rules (RFC 9449 7): replay cache in memory or shared by the workers, nonces
    keyed by the introspection secret (the same in every worker, never sent anywhere)."""
    replay: ReplayCache
    if settings.dpop_replay_db is not None:
        try:
            replay = SqliteReplayCache(settings.dpop_replay_db)
        except (OSError, sqlite3.Error) as exc:
            raise SettingsError(f"--dpop-replay-db {settings.dpop_replay_db}: {exc}") from None
    else:
        replay = MemoryReplayCache()
    nonces = None
    if settings.dpop_nonce and settings.credentials is not None:
        nonces = Nonces(settings.credentials.client_secret.encode("utf-8"))
    proofs = ResourceProofs(
        resource_url=settings.resource_url,
        replay=replay,
        required=settings.require_dpop,
        nonces=nonces,
    )
    return proofs, replay


def _bearer_gate(
    settings: WeatherSettings,
    verifier: AccessTokenVerifier,
    proofs: ResourceProofs,
    public: list[str],
) -> Middleware:
    """Our RFC 6750 / RFC 9449 gate: everything but health, the metadata (and /metrics) needs
    a token."""
    limit = settings.failed_token_limit
    failures = MemoryLimiter(rate=limit / 60, burst=limit)  # per source, bounded key count
    return Middleware(
        BearerAuthMiddleware,
        verifier=verifier,
        failures=failures,
        required_scopes=settings.required_scopes,
        challenge_scopes=settings.scopes.all_scopes,
        resource_metadata=settings.resource_metadata_url,
        public_paths=[HEALTH_PATH, urlsplit(settings.resource_metadata_url).path, *public],
        dpop=proofs,
    )


def build_app(
    settings: WeatherSettings, *, require_auth: bool = True, seams: Seams | None = None
) -> Starlette:
    """The whole ASGI application; `require_auth=False` exists only for the benchmark."""
    seams = seams or Seams()
    try:
        settings.scopes.check_tools(TOOL_NAMES)
    except ValueError as exc:
        raise SettingsError(f"--tool-scopes: {exc}") from None
    metrics = app_metrics(settings)
    verifier = _verifier(settings, seams, metrics) if require_auth else None
    proofs, replay = _proofs(settings) if verifier is not None else (None, None)
    nws = _nws(settings, seams)
    server = _mcp_server(settings, verifier is not None)
    register_tools(server, nws, replay=settings.nws_replay)
    inner = server.streamable_http_app(
        streamable_http_path=settings.mcp_path,
        # No MCP sessions (the 2026-07-28 revision has none; earlier clients keep working): no
        # per-identity state to pile up, so no identity can take the sessions of others.
        stateless_http=True,
        max_request_body_size=MAX_BODY,
        transport_security=transport_security(settings),
        host=settings.host,
    )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with server.session_manager.run():
            try:
                yield
            finally:
                await nws.aclose()
                if verifier is not None:
                    await verifier.aclose()
                if isinstance(replay, SqliteReplayCache):
                    replay.close()

    routes: list[Route | Mount] = [Route(HEALTH_PATH, health, methods=["GET"])]
    middleware = [_host_check(settings)]
    if metrics is not None:  # no token (a scraper has none), but the Host and Origin checks
        middleware.insert(0, Middleware(MetricsMiddleware, metrics=metrics))
        routes.append(Route(METRICS_PATH, metrics.handle, methods=["GET"]))
    if verifier is not None and proofs is not None:
        routes.append(_metadata_route(settings))
        public = [METRICS_PATH] if metrics is not None else []
        middleware.append(_bearer_gate(settings, verifier, proofs, public))
    # After the gate: a stranger's body is never buffered (refused unread, see http_guard).
    body_timeout = settings.connection_limits.body_timeout
    middleware.append(Middleware(BodyGuardMiddleware, timeout=body_timeout, limit=MAX_BODY))
    if verifier is not None and settings.scopes.per_tool:  # a tool call without its scope: 403
        resource_metadata = settings.resource_metadata_url
        scopes = settings.scopes
        middleware.append(
            Middleware(ToolScopeMiddleware, scopes=scopes, resource_metadata=resource_metadata)
        )
    guarded = inner if verifier is None else RequireVerified(inner)
    routes += [Route(settings.mcp_path, no_stream, methods=["GET"]), Mount("", app=guarded)]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


def _scope_summary(settings: WeatherSettings) -> str:
    """`required scope X`, plus each tool's own scopes when configured."""
    base = " ".join(settings.required_scopes) or "(none)"
    tools = "; ".join(f"{tool} needs {' '.join(needed)}" for tool, needed in settings.tool_scopes)
    return f"required scope {base}" + (f"; {tools}" if tools else "")


def startup_banner(settings: WeatherSettings) -> list[str]:
    """What weather.py prints at start: where it listens, who it trusts, replay or live."""
    lines = [
        f"weather: MCP endpoint {settings.resource_url} (listening on {settings.host}:"
        f"{settings.port})",
        f"weather: authorization server {settings.auth_server}; " + _scope_summary(settings),
        f"weather: protected resource metadata {settings.resource_metadata_url}",
        f"weather: introspection cache {settings.introspection_cache_ttl:g}s"
        + (" (off)" if settings.introspection_cache_ttl == 0 else ""),
        "weather: bearer tokens: JWTs (RFC 9068) checked here against the issuer's keys"
        + (" and introspected" if settings.introspect_jwt else "")
        + ", others "
        + (
            "checked for oauth.py's prefix and checksum, then introspected"
            if settings.local_token_check
            else "introspected"
        )
        + f"; {settings.failed_token_limit} invalid per minute per address, then 429",
        "weather: DPoP (RFC 9449): "
        + ("required, bearer tokens refused" if settings.require_dpop else "accepted")
        + (", with server nonces" if settings.dpop_nonce else "")
        + "; proofs remembered "
        + (f"in {settings.dpop_replay_db}" if settings.dpop_replay_db else "in memory"),
        f"weather: clients: {settings.connection_limits.summary()}",
        "weather: metrics "
        + ("GET /metrics (no token: keep it private)" if settings.metrics else "off"),
    ]
    if settings.workers > 1:
        lines.append(
            f"weather: {settings.workers} worker processes (each its own introspection cache"
            + ("; /metrics sums them all)" if settings.metrics else ")")
        )
    if settings.credentials is not None:
        lines.append(
            f"weather: introspecting as {settings.credentials.client_id} "
            f"(credentials from {settings.credentials_source})"
        )
    if settings.allow_insecure_http:
        lines += ["weather: " + "!" * 60, *INSECURE_HTTP_WARNING, "weather: " + "!" * 60]
    if settings.nws_replay:
        lines += ["weather: " + "!" * 60, f"weather: {SUMMARY}", "weather: " + "!" * 60]
    else:
        lines.append(f"weather: NWS API {settings.nws_base}")
    return lines
