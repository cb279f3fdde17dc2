"""Protected MCP weather server (OAuth 2.1 resource server): `uv run python weather.py --help`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import uvicorn
from dotenv import load_dotenv

from secure_mcp.common.h11_guard import uvicorn_options
from secure_mcp.common.settings import SettingsError
from secure_mcp.weather.app import build_app, startup_banner
from secure_mcp.weather.settings import settings_from
from secure_mcp.weather.workers import serve

# Only the `.env` next to this script: python-dotenv would otherwise search every parent folder.
ENV_FILE = Path(__file__).with_name(".env")


def main(argv: list[str]) -> int:
    """Flags and environment (plus `.env`) -> settings -> app -> uvicorn on the chosen port."""
    load_dotenv(ENV_FILE)
    try:
        settings = settings_from(argv, os.environ)
        app = build_app(settings)  # with workers, each builds its own; this one checks first
    except SettingsError as exc:
        print(f"weather.py: error: {exc}", file=sys.stderr)
        return 2
    for line in startup_banner(settings):
        print(line, flush=True)
    if settings.workers > 1:
        serve(settings)
        return 0
    # No access log: a refused `?access_token=` URL must not land in a log line.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,
        **uvicorn_options(settings.connection_limits),  # slow clients, connection caps
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
