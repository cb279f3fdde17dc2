"""What oauth.py prints at start: issuer, metadata URL, demo login, credentials file."""

from __future__ import annotations

from secure_mcp.common.resource_credentials import credentials_path
from secure_mcp.oauth.settings import OAuthSettings


def banner(settings: OAuthSettings) -> str:
    """The start-up text; the demo password appears only when it was generated for this run."""
    if settings.demo_password_generated:
        password = f"{settings.demo_password}  (generated for this run; set OAUTH_DEMO_PASSWORD)"
    else:
        password = "(from OAUTH_DEMO_PASSWORD)"  # noqa: S105 - not a secret
    lines = [
        "OAuth 2.1 authorization server",
        f"  issuer:      {settings.issuer}",
        f"  metadata:    {settings.metadata_url}",
        f"  resources:   {', '.join(settings.resources)}",
        f"  scopes:      {' '.join(settings.scopes)}",
        f"  data folder: {settings.data_dir}",
        f"  introspection credentials: {credentials_path(settings.data_dir)}",
        f"  demo login:  username {settings.demo_username}",
        f"               password {password}",
    ]
    return "\n".join(lines)
