"""The authorization server's one settings object, built from flags and environment."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from secure_mcp.common.connection_limits import ConnectionLimits, limit_options, limits_from
from secure_mcp.common.paths import oauth_data_dir
from secure_mcp.common.ratelimit import Rate
from secure_mcp.common.resource_credentials import (
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    CredentialsError,
    ResourceCredentials,
    credentials_from_env,
)
from secure_mcp.common.rfc9449 import ALGORITHMS as DPOP_ALGORITHMS
from secure_mcp.common.settings import (
    Option,
    Options,
    SettingsError,
    integer,
    path,
    words,
)
from secure_mcp.common.uris import (
    LOOPBACK_NAMES,
    bracketed,
    canonical_resource,
    host_port,
    insecure_http,
)
from secure_mcp.common.well_known import AUTHORIZATION_SERVER, well_known_url

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 8003
DEFAULT_ISSUER = "http://localhost:8003"
DEFAULT_RESOURCE = "http://127.0.0.1:8000/mcp"
DEFAULT_SCOPES = ("weather:read",)
DEFAULT_ACCESS_TOKEN_TTL = 3600
DEFAULT_JWT_ACCESS_TOKEN_TTL = 300  # JWTs are checked without asking us: revocation waits for exp
OPAQUE, JWT = "opaque", "jwt"  # access token formats (names, not secrets)
ACCESS_TOKEN_FORMATS = (OPAQUE, JWT)
DEFAULT_PUBLISH_AHEAD = 600  # a new signing key is in the JWKS this long before it signs
DEFAULT_JWKS_MAX_AGE = 300  # Cache-Control max-age of the JWKS
DEFAULT_KEY_RELOAD = 60  # seconds between two reads of the key store by a running server
DEFAULT_DEMO_USERNAME = "demo"
DEFAULT_SERVER_NAME = "Secure MCP authorization server"
# What the consent page says each scope lets the application do (OAUTH_SCOPE_DESCRIPTIONS adds
# to or replaces these); a scope without one is still shown, with its code.
DEFAULT_SCOPE_DESCRIPTIONS: Mapping[str, str] = {
    "weather:read": "read weather alerts and forecasts",
    "weather:alerts": "read active weather alerts",
}
MIN_PASSWORD_LENGTH = 12  # characters; a generated one is 16
MIN_SESSION_SECRET_BYTES = 32
WILDCARD_HOSTS = ("0.0.0.0", "::")  # noqa: S104 - recognised, never chosen
# Per-source and per-account limits (N per S seconds, bursts of N); the environment names them.
DEFAULT_REGISTER_RATE = Rate(20, 60)
DEFAULT_AUTHORIZE_RATE = Rate(60, 60)
DEFAULT_LOGIN_FAILURES_PER_ACCOUNT = Rate(5, 300)
DEFAULT_LOGIN_FAILURES_PER_SOURCE = Rate(20, 300)
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 3.3 scope-token
DATABASE_DRIVERS = {
    "postgresql+asyncpg": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "sqlite": "sqlite+aiosqlite",
}
INSECURE_FLAG = "--allow-insecure-http (OAUTH_ALLOW_INSECURE_HTTP=1)"


@dataclass(frozen=True)
class OAuthSettings:
    """Everything oauth.py needs; secrets never appear in the repr."""

    data_dir: Path
    demo_password: str = field(repr=False)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    issuer: str = DEFAULT_ISSUER
    resources: tuple[str, ...] = (DEFAULT_RESOURCE,)
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    access_token_ttl: int = DEFAULT_ACCESS_TOKEN_TTL
    access_token_format: str = OPAQUE  # or JWT (RFC 9068)
    signing_key_publish_ahead: int = DEFAULT_PUBLISH_AHEAD
    jwks_max_age: int = DEFAULT_JWKS_MAX_AGE
    signing_key_reload: float = DEFAULT_KEY_RELOAD
    refresh_token_ttl: int = 30 * 24 * 3600
    code_ttl: int = 600  # OAuth 2.1 4.1.2: at most 10 minutes; also a pending sign-in's life
    consent_ttl: int = 12 * 3600  # remembered consent (never for public loopback clients)
    demo_username: str = DEFAULT_DEMO_USERNAME
    demo_password_generated: bool = False
    server_name: str = DEFAULT_SERVER_NAME  # how the sign-in and consent pages name this server
    scope_descriptions: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_SCOPE_DESCRIPTIONS)
    )
    session_secret: str | None = field(default=None, repr=False)
    # RFC 7591 3: SHA-256 of the initial access token client_credentials registrations need;
    # None: such registrations are refused. The token itself is kept nowhere.
    initial_access_token_hash: str | None = field(default=None, repr=False)
    introspection_credentials: ResourceCredentials | None = None  # for resources[0]
    cleanup_interval: float = 300.0
    max_body_bytes: int = 16 * 1024
    cimd_allow_insecure: bool = False  # development only: http and non-public document hosts
    cimd_timeout: float = 5.0  # seconds for a whole metadata document fetch
    cimd_max_bytes: int = 5 * 1024
    cimd_ca_file: Path | None = None  # extra trusted CAs (PEM) for document fetches; still verified
    allow_insecure_http: bool = False  # development only: plain-http issuer/resources off loopback
    register_rate: Rate = DEFAULT_REGISTER_RATE  # POST /register per source
    authorize_rate: Rate = DEFAULT_AUTHORIZE_RATE  # the sign-in and consent pages per source
    login_failures_per_account: Rate = DEFAULT_LOGIN_FAILURES_PER_ACCOUNT
    login_failures_per_source: Rate = DEFAULT_LOGIN_FAILURES_PER_SOURCE
    max_pending: int = 1000  # authorizations waiting for sign-in or consent, all browsers
    unused_client_ttl: int = 24 * 3600  # a registration no user ever allowed is deleted after
    max_unused_clients: int = 10_000  # registrations no user has allowed yet, all sources
    connection_limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    # SQLAlchemy async URL shared by every instance; None: the SQLite file in the data folder
    database_url: str | None = field(default=None, repr=False)
    dpop_nonce: bool = False  # RFC 9449 8: every proof at /token must carry our nonce
    dpop_algorithms: tuple[str, ...] = DPOP_ALGORITHMS  # dpop_signing_alg_values_supported
    audit_log: str | None = None  # a file path, "-" for stdout, None for no audit log
    metrics: bool = False  # GET /metrics (Prometheus text format); off by default

    def __post_init__(self) -> None:
        check_issuer(self.issuer)
        if not self.resources:
            raise SettingsError("configure at least one resource")
        for resource in self.resources:
            check_resource(resource)
        # MCP canonical server URI: kept, compared and issued as `aud` in one form
        canonical = tuple(canonical_resource(r) for r in self.resources)
        object.__setattr__(self, "resources", canonical)
        if len(set(self.resources)) != len(self.resources):
            raise SettingsError("a resource is configured twice")
        if not self.allow_insecure_http:
            check_https(self.issuer, self.resources)
        if not self.scopes or not all(SCOPE_TOKEN.match(s) for s in self.scopes):
            raise SettingsError(f"scopes must be RFC 6749 scope tokens: {self.scopes!r}")
        if min(self.access_token_ttl, self.refresh_token_ttl, self.code_ttl) <= 0:
            raise SettingsError("token lifetimes must be positive")
        self._check_signing_keys()
        if self.cimd_timeout <= 0 or self.cimd_max_bytes <= 0:
            raise SettingsError("the metadata document limits must be positive")
        if not self.demo_username or not self.demo_password:
            raise SettingsError("the demo username and password must not be empty")
        if len(self.demo_password) < MIN_PASSWORD_LENGTH:
            raise SettingsError(
                f"OAUTH_DEMO_PASSWORD must be at least {MIN_PASSWORD_LENGTH} characters "
                "(unset it to get a generated one)"
            )
        if self.session_secret is not None:
            check_session_secret(self.session_secret, "OAUTH_SESSION_SECRET")
        if urlsplit(self.issuer).hostname == "localhost" and self.host.lower() != "localhost":
            # clients may reach `localhost` over ::1 or 127.0.0.1: this server must hold both
            raise SettingsError(
                f"the issuer {self.issuer} is on localhost, so bind --host localhost (both "
                f"127.0.0.1 and ::1), not {self.host}; or use an issuer on the address you bind, "
                f"e.g. http://127.0.0.1:{self.port}"
            )
        if self.database_url is not None:
            object.__setattr__(self, "database_url", check_database_url(self.database_url))
        if min(self.max_pending, self.unused_client_ttl, self.max_unused_clients) <= 0:
            raise SettingsError(
                "the pending-authorization and registration limits must be positive"
            )

    def _check_signing_keys(self) -> None:
        """The token format, and a publish-ahead long enough for every cached JWKS to update."""
        if self.access_token_format not in ACCESS_TOKEN_FORMATS:
            raise SettingsError(
                f"the access token format must be opaque or jwt: {self.access_token_format!r}"
            )
        if self.jwks_max_age < 0 or self.signing_key_reload <= 0:
            raise SettingsError("the JWKS max-age and the key reload interval must be positive")
        needed = self.jwks_max_age + self.signing_key_reload
        if self.signing_key_publish_ahead < needed:
            raise SettingsError(
                f"the signing-key publish-ahead ({self.signing_key_publish_ahead} s) must be at "
                f"least the JWKS max-age plus the key reload interval ({needed} s), so that "
                "every resource server knows a new key before it signs"
            )

    @property
    def jwt_access_tokens(self) -> bool:
        """True when access tokens are RFC 9068 JWTs."""
        return self.access_token_format == JWT

    @property
    def issuer_path(self) -> str:
        """The issuer's path ('' for an issuer without one)."""
        return urlsplit(self.issuer).path

    @property
    def metadata_url(self) -> str:
        """Where RFC 8414 section 3.1 says clients fetch the metadata for this issuer."""
        return well_known_url(self.issuer, AUTHORIZATION_SERVER)

    def endpoint(self, path: str) -> str:
        """The absolute URL of one of the server's endpoints."""
        return self.issuer + path

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """`Host` values this server answers: the issuer's, the bound interface's, loopback names.

        Anything else is a request meant for another server, or a DNS-rebinding attempt.
        """
        parts = urlsplit(self.issuer)
        default_port = 443 if parts.scheme == "https" else 80
        issuer_host = host_port(parts.hostname or "", parts.port or default_port)
        hosts = {issuer_host}
        if (parts.port or default_port) == default_port:
            hosts.add(bracketed(parts.hostname or ""))
        loopback = self.host.lower() in LOOPBACK_NAMES or self.host.lower() in WILDCARD_HOSTS
        names = list(LOOPBACK_NAMES) if loopback else []
        if self.host not in WILDCARD_HOSTS:
            names.append(self.host)
        hosts.update(host_port(name, self.port) for name in names)
        return frozenset(host.lower() for host in hosts)


def check_session_secret(secret: str, source: str) -> None:
    """SettingsError unless the session key has at least 32 bytes."""
    if len(secret.encode("utf-8")) < MIN_SESSION_SECRET_BYTES:
        raise SettingsError(
            f"{source} must be at least {MIN_SESSION_SECRET_BYTES} bytes long "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
        )


def check_database_url(url: str) -> str:
    """The URL in SQLAlchemy's async form: PostgreSQL through asyncpg, or SQLite through aiosqlite.

    `postgresql://` and `postgres://` are read as `postgresql+asyncpg://`, `sqlite://` as
    `sqlite+aiosqlite://`; any other driver is a SettingsError (the password is never shown).
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise SettingsError(
            "--database-url must be an SQLAlchemy URL such as "
            "postgresql+asyncpg://user:password@host:5432/oauth"
        ) from None
    driver = DATABASE_DRIVERS.get(parsed.drivername)
    if driver is None:
        raise SettingsError(
            f"--database-url: unsupported database {parsed.drivername!r}; use "
            "postgresql+asyncpg://... or sqlite+aiosqlite:///path"
        )
    if driver == "sqlite+aiosqlite" and not parsed.database:
        raise SettingsError("--database-url: an SQLite URL needs a file path (sqlite:///path)")
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def check_issuer(issuer: str) -> None:
    """RFC 8414 2: an http(s) URL with no query or fragment; no trailing slash (published as is)."""
    parts = urlsplit(issuer)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise SettingsError(f"issuer must be an http(s) URL: {issuer!r}")
    if parts.query or parts.fragment or "#" in issuer or "?" in issuer:
        raise SettingsError(f"issuer must have no query or fragment: {issuer!r}")
    if issuer.endswith("/"):
        raise SettingsError(f"issuer must not end with '/': {issuer!r}")


def check_resource(resource: str) -> None:
    """RFC 8707 2: a resource is an absolute URI without a fragment."""
    try:
        parts = urlsplit(resource)
        _ = parts.port
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in {"http", "https"} or not parts.hostname or "#" in resource:
        raise SettingsError(f"resource must be an absolute http(s) URL, no fragment: {resource!r}")


def check_https(issuer: str, resources: Sequence[str]) -> None:
    """RFC 8414 2 and RFC 9728 2: https, except on a loopback host (one line naming the flag)."""
    if insecure_http(issuer):
        raise SettingsError(
            f"--issuer {issuer} must be https: plain http is only for loopback hosts "
            f"(RFC 8414 section 2); for development only, {INSECURE_FLAG} allows it"
        )
    for resource in resources:
        if insecure_http(resource):
            raise SettingsError(
                f"resource {resource} must be https: plain http is only for loopback hosts "
                f"(RFC 9728 section 2); for development only, {INSECURE_FLAG} allows it"
            )


def _rate(value: str, name: str) -> Rate:
    """A rate setting written N/SECONDS, or SettingsError naming the variable."""
    try:
        return Rate.parse(value)
    except ValueError:
        raise SettingsError(
            f"{name} must be N/SECONDS with N and SECONDS positive: {value!r}"
        ) from None


def _scope_descriptions(value: str, name: str) -> dict[str, str]:
    """The defaults, with OAUTH_SCOPE_DESCRIPTIONS (a JSON object of scope: words) over them."""
    try:
        given = json.loads(value)
    except ValueError:
        given = None
    if not isinstance(given, dict) or not all(
        isinstance(words, str) and words.strip() for words in given.values()
    ):
        raise SettingsError(
            "OAUTH_SCOPE_DESCRIPTIONS must be a JSON object of scope: description, e.g. "
            '{"weather:read": "read weather alerts and forecasts"}'
        )
    return {**DEFAULT_SCOPE_DESCRIPTIONS, **{str(k): v.strip() for k, v in given.items()}}


OPTIONS = Options(
    (
        Option(
            "--host",
            "OAUTH_HOST",
            f"interface to bind (OAUTH_HOST, {DEFAULT_HOST})",
            default=DEFAULT_HOST,
        ),
        Option(
            "--port",
            "OAUTH_PORT",
            f"port (OAUTH_PORT, {DEFAULT_PORT})",
            integer,
            DEFAULT_PORT,
            flag_type=int,
        ),
        Option("--issuer", "OAUTH_ISSUER", f"issuer URL (OAUTH_ISSUER, {DEFAULT_ISSUER})"),
        Option(
            "--data-dir", "OAUTH_DATA_DIR", "SQLite file and generated secrets (OAUTH_DATA_DIR)"
        ),
        Option(
            "--database-url",
            "OAUTH_DATABASE_URL",
            "shared database of several instances, e.g. postgresql+asyncpg://user:password@"
            "host/oauth (OAUTH_DATABASE_URL; default: the SQLite file in the data folder)",
        ),
        Option(
            "--resource",
            "OAUTH_RESOURCES",
            f"resource server URL, repeatable (OAUTH_RESOURCES, {DEFAULT_RESOURCE})",
            words,
            repeat=True,
        ),
        Option("--scopes", "OAUTH_SCOPES", "scopes every resource accepts (OAUTH_SCOPES)", words),
        Option(
            "--access-token-ttl",
            "OAUTH_ACCESS_TOKEN_TTL",
            "access token lifetime, seconds (OAUTH_ACCESS_TOKEN_TTL; 3600, or 300 for jwt)",
            integer,
            flag_type=int,
        ),
        Option(
            "--access-token-format",
            "OAUTH_ACCESS_TOKEN_FORMAT",
            "opaque: random tokens checked by introspection; jwt: RFC 9068 signed tokens "
            "resource servers check themselves (OAUTH_ACCESS_TOKEN_FORMAT, opaque)",
            default=OPAQUE,
            choices=ACCESS_TOKEN_FORMATS,
        ),
        Option(
            "--signing-key-publish-ahead",
            "OAUTH_SIGNING_KEY_PUBLISH_AHEAD",
            "seconds a rotated-in signing key is published before it signs "
            f"(OAUTH_SIGNING_KEY_PUBLISH_AHEAD, {DEFAULT_PUBLISH_AHEAD})",
            integer,
            DEFAULT_PUBLISH_AHEAD,
            flag_type=int,
        ),
        Option(
            "--cimd-allow-insecure",
            "OAUTH_CIMD_ALLOW_INSECURE",
            "DEVELOPMENT ONLY: fetch client ID metadata documents over http and from loopback "
            "or private addresses (OAUTH_CIMD_ALLOW_INSECURE)",
            switch=True,
        ),
        Option(
            "--cimd-ca-file",
            "OAUTH_CIMD_CA_FILE",
            "PEM file of extra CA certificates trusted, besides the system ones, when fetching "
            "client ID metadata documents (a private or test CA); TLS is still verified "
            "(OAUTH_CIMD_CA_FILE)",
            path,
        ),
        Option(
            "--allow-insecure-http",
            "OAUTH_ALLOW_INSECURE_HTTP",
            "DEVELOPMENT ONLY: allow a plain-http issuer or resource on a host other than "
            "loopback; codes, tokens and passwords then cross the network unencrypted "
            "(OAUTH_ALLOW_INSECURE_HTTP)",
            switch=True,
        ),
        Option(
            "--dpop-nonce",
            "OAUTH_DPOP_NONCE",
            "require a server nonce in DPoP proofs at the token endpoint (RFC 9449 section 8; "
            "OAUTH_DPOP_NONCE)",
            switch=True,
        ),
        Option(
            "--audit-log",
            "OAUTH_AUDIT_LOG",
            "append one JSON line per sign-in, consent, code, token and registration event to "
            "this file (created 0600), or - for stdout (OAUTH_AUDIT_LOG; default: none)",
        ),
        Option(
            "--metrics",
            "OAUTH_METRICS",
            "serve GET /metrics in Prometheus text format, unauthenticated: never expose it "
            "publicly (OAUTH_METRICS)",
            switch=True,
        ),
        Option(
            "--initial-access-token",
            "OAUTH_INITIAL_ACCESS_TOKEN",
            "RFC 7591 initial access token: registering a client for the client_credentials "
            "grant needs it as `Authorization: Bearer` on POST /register; without it such "
            "registrations are refused (OAUTH_INITIAL_ACCESS_TOKEN, which keeps it out of the "
            f"process list; at least {MIN_SESSION_SECRET_BYTES} characters)",
        ),
        *limit_options("OAUTH"),
        Option(None, "OAUTH_JWKS_MAX_AGE", read=integer, default=DEFAULT_JWKS_MAX_AGE),
        Option(None, "OAUTH_DEMO_USERNAME", default=DEFAULT_DEMO_USERNAME),
        Option(None, "OAUTH_DEMO_PASSWORD", default=""),
        Option(None, "OAUTH_SERVER_NAME", default=DEFAULT_SERVER_NAME),
        Option(None, "OAUTH_SCOPE_DESCRIPTIONS", read=_scope_descriptions),
        Option(None, "OAUTH_SESSION_SECRET"),
        Option(None, "OAUTH_REGISTER_RATE", read=_rate, default=DEFAULT_REGISTER_RATE),
        Option(None, "OAUTH_AUTHORIZE_RATE", read=_rate, default=DEFAULT_AUTHORIZE_RATE),
        Option(
            None,
            "OAUTH_LOGIN_FAILURES_PER_ACCOUNT",
            read=_rate,
            default=DEFAULT_LOGIN_FAILURES_PER_ACCOUNT,
        ),
        Option(
            None,
            "OAUTH_LOGIN_FAILURES_PER_SOURCE",
            read=_rate,
            default=DEFAULT_LOGIN_FAILURES_PER_SOURCE,
        ),
        Option(None, "OAUTH_MAX_PENDING", read=integer, default=1000),
        Option(None, "OAUTH_UNUSED_CLIENT_TTL", read=integer, default=24 * 3600),
        Option(None, "OAUTH_MAX_UNUSED_CLIENTS", read=integer, default=10_000),
        Option(None, ENV_CLIENT_ID),
        Option(None, ENV_CLIENT_SECRET),
    )
)


def build_parser() -> argparse.ArgumentParser:
    """The command line of oauth.py; every flag has an environment equivalent."""
    return OPTIONS.parser("oauth.py", "OAuth 2.1 authorization server for the MCP weather server.")


def initial_access_token_hash(token: str | None) -> str | None:
    """The SHA-256 hex of the initial access token (None when unset); SettingsError if short."""
    if not token:
        return None
    if len(token) < MIN_SESSION_SECRET_BYTES or not token.isascii() or not token.isprintable():
        raise SettingsError(
            f"the initial access token must be at least {MIN_SESSION_SECRET_BYTES} printable "
            "ASCII characters (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def settings_from(argv: Sequence[str], env: Mapping[str, str]) -> OAuthSettings:
    """Build the settings: flags win over environment, which wins over defaults."""
    args = build_parser().parse_args(list(argv))
    v = OPTIONS.values(args, env)
    try:
        introspection = credentials_from_env(env)
        connection_limits = limits_from(args, env, "OAUTH")
    except (CredentialsError, ValueError) as exc:
        raise SettingsError(str(exc)) from None
    port = v["port"]
    token_format = v["access_token_format"]
    default_ttl = DEFAULT_JWT_ACCESS_TOKEN_TTL if token_format == JWT else DEFAULT_ACCESS_TOKEN_TTL
    password = v["oauth_demo_password"]
    return OAuthSettings(
        data_dir=oauth_data_dir(env, args.data_dir),
        host=v["host"],
        port=port,
        # default http://localhost:8003; follows --port when only the port is changed
        issuer=v["issuer"] or f"http://localhost:{port}",
        resources=v["resource"] or (DEFAULT_RESOURCE,),
        scopes=v["scopes"] or DEFAULT_SCOPES,
        access_token_ttl=default_ttl if v["access_token_ttl"] is None else v["access_token_ttl"],
        access_token_format=token_format,
        signing_key_publish_ahead=v["signing_key_publish_ahead"],
        jwks_max_age=v["oauth_jwks_max_age"],
        demo_username=v["oauth_demo_username"],
        server_name=v["oauth_server_name"],
        scope_descriptions=v["oauth_scope_descriptions"] or dict(DEFAULT_SCOPE_DESCRIPTIONS),
        demo_password=password or secrets.token_urlsafe(12),
        demo_password_generated=not password,
        session_secret=v["oauth_session_secret"],
        initial_access_token_hash=initial_access_token_hash(v["initial_access_token"]),
        introspection_credentials=introspection,
        cimd_allow_insecure=bool(v["cimd_allow_insecure"]),
        cimd_ca_file=v["cimd_ca_file"],
        allow_insecure_http=bool(v["allow_insecure_http"]),
        connection_limits=connection_limits,
        database_url=v["database_url"],
        dpop_nonce=bool(v["dpop_nonce"]),
        audit_log=v["audit_log"],
        metrics=bool(v["metrics"]),
        register_rate=v["oauth_register_rate"],
        authorize_rate=v["oauth_authorize_rate"],
        login_failures_per_account=v["oauth_login_failures_per_account"],
        login_failures_per_source=v["oauth_login_failures_per_source"],
        max_pending=v["oauth_max_pending"],
        unused_client_ttl=v["oauth_unused_client_ttl"],
        max_unused_clients=v["oauth_max_unused_clients"],
    )
