"""weather.py: flags and environment (plus `.env`) -> settings -> app -> uvicorn on its port."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import uvicorn

from secure_mcp.common.http_guard import uvicorn_options
from secure_mcp.common.settings import SettingsError, fail, show
from secure_mcp.weather.app import build_app, startup_banner
from secure_mcp.weather.settings import WeatherSettings, settings_from
from secure_mcp.weather.workers import serve

PROGRAM = "weather.py"


def main(
    argv: Sequence[str],
    env: Mapping[str, str],
    run: Callable[..., Any] = uvicorn.run,
    run_workers: Callable[[WeatherSettings], None] = serve,
) -> int:
    """Check everything, print the banner, then serve (one process, or supervised workers)."""
    try:
        settings = settings_from(argv, env)
        app = build_app(settings)  # with workers, each builds its own; this one checks first
    except SettingsError as exc:
        return fail(PROGRAM, exc)
    show(startup_banner(settings))
    if settings.workers > 1:
        run_workers(settings)
        return 0
    # No access log: a refused `?access_token=` URL must not land in a log line.
    run(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,
        **uvicorn_options(settings.connection_limits),  # slow clients, connection caps
    )
    return 0
