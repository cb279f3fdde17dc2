"""The demo user: one username and password from the settings, checked in constant time."""

from __future__ import annotations

import hmac

from secure_mcp.oauth.settings import OAuthSettings


def authenticate(settings: OAuthSettings, username: str, password: str) -> str | None:
    """The subject for a correct username and password, else None."""
    name_ok = hmac.compare_digest(username.encode(), settings.demo_username.encode())
    password_ok = hmac.compare_digest(password.encode(), settings.demo_password.encode())
    return settings.demo_username if name_ok and password_ok else None
