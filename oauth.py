"""OAuth 2.1 authorization server for the MCP weather server: `uv run python oauth.py --help`."""

from __future__ import annotations

import os
import sys

import uvicorn
from dotenv import load_dotenv

from secure_mcp.oauth.app import build_app
from secure_mcp.oauth.banner import banner
from secure_mcp.oauth.settings import SettingsError, settings_from


def main(argv: list[str]) -> int:
    """Read flags and environment, print where to find the server, serve until Ctrl-C."""
    load_dotenv()
    try:
        settings = settings_from(argv, os.environ)
        app = build_app(settings)
    except (SettingsError, OSError) as exc:
        print(f"oauth.py: {exc}", file=sys.stderr)
        return 2
    print(banner(settings), flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
