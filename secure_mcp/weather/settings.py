"""The weather server's one settings object, built from flags and the environment."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from secure_mcp.common.connection_limits import ConnectionLimits, limit_options, limits_from
from secure_mcp.common.paths import oauth_data_dir
from secure_mcp.common.private_files import UnsafePathError, check_private_dir, check_private_file
from secure_mcp.common.resource_credentials import (
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    CredentialsError,
    ResourceCredentials,
    credentials_from_env,
    credentials_path,
    load_all,
)
from secure_mcp.common.settings import (
    Option,
    Options,
    SettingsError,
    integer,
    number,
    path,
)
from secure_mcp.common.uris import canonical_resource, insecure_http
from secure_mcp.common.well_known import PROTECTED_RESOURCE, well_known_url
from secure_mcp.weather.permissions import ToolScopes, parse_tool_scopes

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_AUTH_SERVER = "http://localhost:8003"
DEFAULT_NWS_BASE = "https://api.weather.gov"
DEFAULT_USER_AGENT = "secure-mcp-weather/0.1 (+https://github.com/secure-mcp; set NWS_USER_AGENT)"
DEFAULT_SCOPES = ("weather:read",)
DEFAULT_CACHE_TTL = 30.0
DEFAULT_CACHE_SIZE = 10_000
DEFAULT_FAILED_TOKEN_LIMIT = 30  # invalid tokens per minute per source before 429
DEFAULT_JWKS_CACHE_TTL = 300.0  # seconds before the issuer's keys are fetched again
TOKEN_FORMATS = ("smcp", "any")  # smcp: oauth.py's prefixed, checksummed tokens (checked locally)
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::"})  # noqa: S104 - recognised, never chosen
INSECURE_FLAG = "--allow-insecure-http (WEATHER_ALLOW_INSECURE_HTTP=1)"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeatherSettings:
    """Everything weather.py needs, decided once at start-up."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    auth_server: str = DEFAULT_AUTH_SERVER
    resource_url: str = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}/mcp"
    nws_base: str = DEFAULT_NWS_BASE
    nws_replay: bool = False
    nws_user_agent: str = DEFAULT_USER_AGENT
    required_scopes: tuple[str, ...] = DEFAULT_SCOPES  # every request (the base scopes)
    tool_scopes: tuple[tuple[str, tuple[str, ...]], ...] = ()  # a tool's own, besides the base
    introspection_cache_ttl: float = DEFAULT_CACHE_TTL
    introspection_cache_size: int = DEFAULT_CACHE_SIZE
    local_token_check: bool = True  # --token-format smcp: prefix and checksum before introspecting
    introspect_jwt: bool = False  # JWTs checked here and at the AS too (immediate revocation)
    jwks_cache_ttl: float = DEFAULT_JWKS_CACHE_TTL
    failed_token_limit: int = DEFAULT_FAILED_TOKEN_LIMIT
    connection_limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    oauth_data_dir: Path = Path()
    credentials: ResourceCredentials | None = field(default=None, repr=False)
    credentials_source: str = ""
    allow_insecure_http: bool = False  # development only: plain http off loopback
    require_dpop: bool = False  # RFC 9449 7: bearer tokens refused, only DPoP-bound ones
    dpop_nonce: bool = False  # RFC 9449 9: proofs must carry this server's nonce
    dpop_replay_db: Path | None = None  # a SQLite file shared by workers; None: in memory
    metrics: bool = False  # GET /metrics (Prometheus text format), unauthenticated; off by default
    workers: int = 1  # uvicorn worker processes (stateless MCP: any worker serves any request)
    # with several workers: the private folder of prometheus-client's multiprocess mode
    metrics_dir: Path | None = None

    @property
    def scopes(self) -> ToolScopes:
        """The scopes every request needs, and those of each tool."""
        return ToolScopes(self.required_scopes, self.tool_scopes)

    @property
    def credentials_reloadable(self) -> bool:
        """The credentials came from oauth.py's data folder (which a reset rewrites)."""
        return self.credentials_source == str(credentials_path(self.oauth_data_dir))

    @property
    def mcp_path(self) -> str:
        """The path the MCP endpoint is served at (the resource URL's path)."""
        return urlsplit(self.resource_url).path

    @property
    def resource_metadata_url(self) -> str:
        """RFC 9728 section 3.1: the well-known URI inserted before the resource's path."""
        return well_known_url(self.resource_url, PROTECTED_RESOURCE, strip_slash=False)


def _token_check(value: str, name: str) -> bool:
    """True for `smcp` (oauth.py's token format, checked before introspecting), False for `any`."""
    if value not in TOKEN_FORMATS:
        raise SettingsError(f"{name} must be smcp or any, got {value!r}")
    return value == TOKEN_FORMATS[0]


def _tool_scopes(value: str, name: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The per-tool scopes, or a SettingsError naming the problem."""
    try:
        return parse_tool_scopes(value)
    except ValueError as exc:
        raise SettingsError(f"--tool-scopes: {exc}") from None


OPTIONS = Options(
    (
        Option(
            "--host",
            "WEATHER_HOST",
            f"bind address (WEATHER_HOST, default {DEFAULT_HOST})",
            default=DEFAULT_HOST,
        ),
        Option(
            "--port",
            "WEATHER_PORT",
            f"port (WEATHER_PORT, default {DEFAULT_PORT})",
            integer,
            DEFAULT_PORT,
            flag_type=int,
        ),
        Option(
            "--auth-server",
            "AUTH_SERVER_URL",
            f"issuer (AUTH_SERVER_URL, default {DEFAULT_AUTH_SERVER})",
            default=DEFAULT_AUTH_SERVER,
        ),
        Option(
            "--resource-url",
            "WEATHER_RESOURCE_URL",
            "canonical resource URL (WEATHER_RESOURCE_URL)",
        ),
        Option(
            "--nws-base",
            "NWS_API_BASE",
            f"NWS API base (NWS_API_BASE, default {DEFAULT_NWS_BASE})",
            default=DEFAULT_NWS_BASE,
        ),
        Option(
            "--nws-replay",
            "NWS_REPLAY",
            "serve bundled NWS responses instead of the live API (NWS_REPLAY=1)",
            switch=True,
        ),
        Option(
            "--required-scope",
            "WEATHER_REQUIRED_SCOPES",
            "space-separated scopes every request needs (WEATHER_REQUIRED_SCOPES, default "
            "weather:read, or none with --tool-scopes)",
        ),
        Option(
            "--tool-scopes",
            "WEATHER_TOOL_SCOPES",
            "the scopes of each tool, e.g. get_alerts=weather:alerts,get_forecast="
            "weather:forecast (WEATHER_TOOL_SCOPES; default: every tool needs only the required "
            "scopes)",
            _tool_scopes,
            (),
        ),
        Option(
            "--introspect-jwt",
            "WEATHER_INTROSPECT_JWT",
            "introspect JWT access tokens too, after checking them here: a revoked token is "
            "refused within the introspection cache TTL instead of at its expiry "
            "(WEATHER_INTROSPECT_JWT=1)",
            switch=True,
        ),
        Option(
            "--jwks-cache-ttl",
            "WEATHER_JWKS_CACHE_TTL",
            "seconds before the authorization server's signing keys are fetched again "
            f"(WEATHER_JWKS_CACHE_TTL, default {DEFAULT_JWKS_CACHE_TTL:g})",
            number,
            DEFAULT_JWKS_CACHE_TTL,
            flag_type=float,
        ),
        Option(
            "--introspection-cache-ttl",
            "WEATHER_INTROSPECTION_CACHE_TTL",
            "seconds to cache active introspection results, 0 disables "
            "(WEATHER_INTROSPECTION_CACHE_TTL, default 30)",
            number,
            DEFAULT_CACHE_TTL,
            flag_type=float,
        ),
        Option(
            "--token-format",
            "WEATHER_TOKEN_FORMAT",
            "smcp: refuse tokens without oauth.py's prefix and checksum before introspecting; "
            "any: introspect every bearer token, for another authorization server "
            "(WEATHER_TOKEN_FORMAT, default smcp)",
            _token_check,
            True,
            choices=TOKEN_FORMATS,
        ),
        Option(
            "--failed-token-limit",
            "WEATHER_FAILED_TOKEN_LIMIT",
            "invalid tokens one address may present per minute before it gets 429 "
            f"(WEATHER_FAILED_TOKEN_LIMIT, default {DEFAULT_FAILED_TOKEN_LIMIT})",
            integer,
            DEFAULT_FAILED_TOKEN_LIMIT,
            flag_type=int,
        ),
        Option("--oauth-data-dir", "OAUTH_DATA_DIR", "oauth.py data folder (OAUTH_DATA_DIR)"),
        Option(
            "--allow-insecure-http",
            "WEATHER_ALLOW_INSECURE_HTTP",
            "DEVELOPMENT ONLY: allow a plain-http resource URL or authorization server on a "
            "host other than loopback; tokens then cross the network unencrypted "
            "(WEATHER_ALLOW_INSECURE_HTTP=1)",
            switch=True,
        ),
        Option(
            "--require-dpop",
            "WEATHER_REQUIRE_DPOP",
            "accept only DPoP-bound access tokens (RFC 9449), refuse bearer tokens; the "
            "resource metadata says dpop_bound_access_tokens_required (WEATHER_REQUIRE_DPOP=1)",
            switch=True,
        ),
        Option(
            "--dpop-nonce",
            "WEATHER_DPOP_NONCE",
            "require this server's nonce in DPoP proofs (RFC 9449 section 9; WEATHER_DPOP_NONCE=1)",
            switch=True,
        ),
        Option(
            "--dpop-replay-db",
            "WEATHER_DPOP_REPLAY_DB",
            "SQLite file, in a folder of its own, where DPoP proofs already seen are kept, "
            "shared by every worker process on this machine (WEATHER_DPOP_REPLAY_DB; default: "
            "in memory, one process)",
            path,
        ),
        Option(
            "--metrics",
            "WEATHER_METRICS",
            "serve GET /metrics in Prometheus text format, without a token: never expose it "
            "publicly (WEATHER_METRICS=1)",
            switch=True,
        ),
        Option(
            "--workers",
            "WEATHER_WORKERS",
            "worker processes, each with its own introspection cache (WEATHER_WORKERS, default 1)",
            integer,
            1,
            flag_type=int,
        ),
        *limit_options("WEATHER"),
        Option(None, "NWS_USER_AGENT", default=DEFAULT_USER_AGENT),
        Option(None, ENV_CLIENT_ID),
        Option(None, ENV_CLIENT_SECRET),
    )
)


def build_parser() -> argparse.ArgumentParser:
    """The command line of weather.py; every flag has an environment equivalent."""
    return OPTIONS.parser("weather.py", "Protected MCP weather server (OAuth 2.1 resource server).")


def _issuer(raw: str) -> str:
    """The issuer as configured, minus the slash of a bare origin (RFC 8414 3.3 exact match)."""
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
        raise SettingsError(f"--auth-server must be an http(s) URL without query, got {raw!r}")
    return raw[:-1] if parts.path == "/" else raw


def _resource(raw: str) -> str:
    """RFC 8707 section 2: an absolute URI without fragment; ours also needs a path."""
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise SettingsError(f"--resource-url must be an absolute http(s) URL, got {raw!r}")
    if parts.fragment or parts.query or parts.path in {"", "/"}:
        raise SettingsError(f"--resource-url needs a path and no query or fragment, got {raw!r}")
    try:
        return canonical_resource(raw)  # MCP canonical server URI, as oauth.py keeps it
    except ValueError:
        raise SettingsError(f"--resource-url has a malformed port, got {raw!r}") from None


def _check_https(auth_server: str, resource: str) -> None:
    """RFC 8414 2 and RFC 9728 2: https, except on loopback hosts (one line naming the flag)."""
    for flag, url, rfc in (
        ("--auth-server", auth_server, "RFC 8414 section 2"),
        ("--resource-url", resource, "RFC 9728 section 2"),
    ):
        if insecure_http(url):
            raise SettingsError(
                f"{flag} {url} must be https: plain http is only for loopback hosts ({rfc}); "
                f"for development only, {INSECURE_FLAG} allows it"
            )


def settings_from(argv: Sequence[str], env: Mapping[str, str]) -> WeatherSettings:
    """Flags override environment variables, which override the defaults; loads credentials."""
    args = build_parser().parse_args(list(argv))
    v = OPTIONS.values(args, env)
    host, port = v["host"], v["port"]
    public_host = "127.0.0.1" if host in WILDCARD_HOSTS else host
    resource = _resource(v["resource_url"] or f"http://{public_host}:{port}/mcp")
    auth_server = _issuer(v["auth_server"])
    if not v["allow_insecure_http"]:
        _check_https(auth_server, resource)
    data_dir = oauth_data_dir(env, args.oauth_data_dir)
    credentials, source = load_credentials(env, data_dir, resource)
    try:
        connection_limits = limits_from(args, env, "WEATHER")
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    _check_bounds(v)
    scopes = tuple((v["required_scope"] or "").split())
    return WeatherSettings(
        host=host,
        port=port,
        auth_server=auth_server,
        resource_url=resource,
        nws_base=v["nws_base"].rstrip("/"),
        nws_replay=bool(v["nws_replay"]),
        nws_user_agent=v["nws_user_agent"],
        required_scopes=scopes or (() if v["tool_scopes"] else DEFAULT_SCOPES),
        tool_scopes=v["tool_scopes"],
        introspect_jwt=bool(v["introspect_jwt"]),
        jwks_cache_ttl=v["jwks_cache_ttl"],
        introspection_cache_ttl=v["introspection_cache_ttl"],
        local_token_check=v["token_format"],
        failed_token_limit=v["failed_token_limit"],
        connection_limits=connection_limits,
        oauth_data_dir=data_dir,
        credentials=credentials,
        credentials_source=source,
        allow_insecure_http=bool(v["allow_insecure_http"]),
        require_dpop=bool(v["require_dpop"]),
        dpop_nonce=bool(v["dpop_nonce"]),
        dpop_replay_db=v["dpop_replay_db"],
        metrics=bool(v["metrics"]),
        workers=v["workers"],
    )


def _check_bounds(v: Mapping[str, Any]) -> None:
    """The numbers with a lower bound, each with its own message."""
    if v["introspection_cache_ttl"] < 0:
        raise SettingsError("the introspection cache TTL must be 0 (off) or more seconds")
    if v["failed_token_limit"] < 1:
        raise SettingsError("the failed-token limit must be at least 1 per minute")
    if v["jwks_cache_ttl"] <= 0:
        raise SettingsError("the JWKS cache TTL must be more than 0 seconds")
    if v["workers"] < 1:
        raise SettingsError("--workers must be at least 1")


def load_credentials(
    env: Mapping[str, str], data_dir: Path, resource: str
) -> tuple[ResourceCredentials, str]:
    """RFC 7662 section 2.1 credentials and where they came from: environment, then data folder."""
    try:
        from_env = credentials_from_env(env)
        if from_env is not None:
            return from_env, f"{ENV_CLIENT_ID}/{ENV_CLIENT_SECRET}"
        if data_dir.exists():  # never trust a file another user could have written
            check_private_dir(data_dir, create=False)
            check_private_file(credentials_path(data_dir))
        found = load_all(data_dir).get(resource)
    except CredentialsError as exc:
        raise SettingsError(f"cannot load introspection credentials: {exc}") from exc
    except UnsafePathError as exc:
        raise SettingsError(f"will not read introspection credentials: {exc}") from None
    if found is None:
        raise SettingsError(
            f"no introspection credentials for {resource}. Either set {ENV_CLIENT_ID} and "
            f"{ENV_CLIENT_SECRET}, or start oauth.py first with the same OAUTH_DATA_DIR "
            f"(looked in {data_dir}) and with this resource URL configured."
        )
    return found, str(credentials_path(data_dir))


def reread_credentials(data_dir: Path, resource: str) -> ResourceCredentials | None:
    """This resource's credentials in the data folder now, with the same trust checks as at
    start; None (and a log line) when they cannot be read."""
    try:
        check_private_dir(data_dir, create=False)
        check_private_file(credentials_path(data_dir))
        return load_all(data_dir).get(resource)
    except (CredentialsError, OSError) as exc:  # UnsafePathError is an OSError
        logger.warning("cannot read the introspection credentials again: %s", exc)
        return None
