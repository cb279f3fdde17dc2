"""The attack suite's one real oauth.py + weather.py: the settings it runs with (tests/attacks)."""

from __future__ import annotations

SCOPES = "weather:read weather:alerts"  # two scopes, so that a refresh can try to widen


CACHE_TTL = 1.0  # weather.py's introspection cache: a revoked token dies within a second


HEADER_TIMEOUT = 2.0  # seconds a request head may take (10 by default); short to keep tests fast


BODY_TIMEOUT = 2.0  # seconds a request body may take after its head (30 by default)


FAILED_TOKEN_LIMIT = 30  # bad tokens per minute per source at weather.py (the default)


def deadlines(prefix: str) -> dict[str, str]:
    """Short header and body deadlines for oauth.py (OAUTH_) or weather.py (WEATHER_)."""
    return {
        f"{prefix}_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        f"{prefix}_BODY_TIMEOUT": str(BODY_TIMEOUT),
    }
