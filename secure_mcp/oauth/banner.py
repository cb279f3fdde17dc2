"""What oauth.py prints at start: issuer, metadata URL, demo login, credentials file."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from secure_mcp.common.resource_credentials import credentials_path
from secure_mcp.oauth.demo_password import DEMO_PASSWORD_FILE
from secure_mcp.oauth.rfc8414 import JWKS_PATH
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.storage import DB_FILE

INSECURE_WARNING = (
    "!! WARNING: --cimd-allow-insecure / OAUTH_CIMD_ALLOW_INSECURE is on.",
    "!! Client ID metadata documents may be fetched over plain http and from loopback,",
    "!! private and link-local addresses: any client_id URL can make this server call",
    "!! into your own network (SSRF). For local development and tests only.",
)

INSECURE_HTTP_WARNING = (
    "!! WARNING: --allow-insecure-http / OAUTH_ALLOW_INSECURE_HTTP is on.",
    "!! The issuer or a resource may be a plain http URL on a host other than loopback:",
    "!! authorization codes, tokens, client secrets and the sign-in password then cross",
    "!! the network unencrypted, readable and changeable by anyone on the path.",
    "!! For development on a trusted network only; never for real users.",
)


def _token_format(settings: OAuthSettings) -> str:
    """What access tokens look like and how long they live."""
    if settings.jwt_access_tokens:
        return (
            f"JWT (RFC 9068, ES256), {settings.access_token_ttl} s; "
            f"keys at {settings.endpoint(JWKS_PATH)}"
        )
    return f"opaque (checked by introspection), {settings.access_token_ttl} s"


def shown_database(settings: OAuthSettings) -> str:
    """Where the data lives, the password hidden; secrets with it when it is shared."""
    if settings.database_url is None:
        return f"{settings.data_dir / DB_FILE} (SQLite; session key in the data folder)"
    url = make_url(settings.database_url).render_as_string(hide_password=True)
    return f"{url} (shared; session key and introspection credentials kept there)"


def _audit_target(target: str | None) -> str:
    """Where audit lines go, in words."""
    if target is None:
        return "off (--audit-log PATH or -)"
    return "stdout" if target == "-" else target


def banner(settings: OAuthSettings) -> list[str]:
    """The start-up lines; the demo password appears only when it was generated (and kept)."""
    if settings.demo_password_generated:
        kept = settings.data_dir / DEMO_PASSWORD_FILE
        password = (
            f"{settings.demo_password}  (kept in {kept}; set OAUTH_DEMO_PASSWORD to choose one)"
        )
    else:
        password = "(from OAUTH_DEMO_PASSWORD)"  # noqa: S105 - not a secret
    lines = [
        "OAuth 2.1 authorization server",
        f"  issuer:      {settings.issuer}",
        f"  metadata:    {settings.metadata_url}",
        f"  resources:   {', '.join(settings.resources)}",
        f"  scopes:      {' '.join(settings.scopes)}",
        f"  access tokens: {_token_format(settings)}",
        f"  data folder: {settings.data_dir}",
        f"  database:    {shown_database(settings)}",
        f"  introspection credentials: {credentials_path(settings.data_dir)}",
        f"  demo login:  username {settings.demo_username}",
        f"               password {password}",
        "  client ID metadata documents: "
        + ("INSECURE (development)" if settings.cimd_allow_insecure else "https, public hosts"),
        "  client_credentials registrations: "
        + (
            "with the initial access token"
            if settings.initial_access_token_hash
            else "off (--initial-access-token)"
        ),
        f"  clients:     {settings.connection_limits.summary()}",
        f"  audit log:   {_audit_target(settings.audit_log)}",
        "  metrics:     "
        + ("GET /metrics (no authentication: keep it private)" if settings.metrics else "off"),
    ]
    if settings.cimd_ca_file is not None:
        lines.append(f"  extra CA certificates for documents: {settings.cimd_ca_file}")
    if settings.cimd_allow_insecure:
        lines += ["", "!" * 78, *INSECURE_WARNING, "!" * 78]
    if settings.allow_insecure_http:
        lines += ["", "!" * 78, *INSECURE_HTTP_WARNING, "!" * 78]
    return lines
