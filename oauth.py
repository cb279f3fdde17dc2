"""OAuth 2.1 authorization server for the MCP weather server: `uv run python oauth.py --help`.

`uv run python oauth.py keys list|rotate` shows or rotates the JWT signing keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import uvicorn
from dotenv import load_dotenv

from secure_mcp.common.h11_guard import uvicorn_options
from secure_mcp.common.listeners import host_listener, loopback_listeners
from secure_mcp.common.settings import SettingsError
from secure_mcp.oauth import keys_cli
from secure_mcp.oauth.app import build_app, prepare
from secure_mcp.oauth.banner import banner
from secure_mcp.oauth.demo_password import keep_demo_password
from secure_mcp.oauth.settings import settings_from
from secure_mcp.oauth.signing_keys import KeyStoreError
from secure_mcp.oauth.storage import StorageError

# Only the `.env` next to this script: python-dotenv would otherwise search every parent folder.
ENV_FILE = Path(__file__).with_name(".env")


def main(argv: list[str]) -> int:
    """Read flags and environment, print where to find the server, serve until Ctrl-C."""
    load_dotenv(ENV_FILE)
    if argv[:1] == ["keys"]:  # `oauth.py keys list|rotate`: the JWT signing keys
        try:
            return keys_cli.main(argv[1:], os.environ)
        except (SettingsError, OSError, KeyStoreError) as exc:
            print(f"oauth.py: {exc}", file=sys.stderr)
            return 2
    try:
        settings = keep_demo_password(settings_from(argv, os.environ))
        app = build_app(settings)
        asyncio.run(prepare(settings))  # migrated (or refused) before anything is served
        # Bound before the banner: a taken port stops us before we print a password that
        # belongs to whatever already listens there.
        if settings.host.lower() == "localhost":  # both 127.0.0.1 and ::1, or no start
            listeners = loopback_listeners(settings.port)
        else:
            listeners = host_listener(settings.host, settings.port)
    except (SettingsError, StorageError, OSError) as exc:
        print(f"oauth.py: {exc}", file=sys.stderr)
        return 2
    print(banner(settings), flush=True)
    options = uvicorn_options(settings.connection_limits)  # slow clients, connection caps
    print(f"  listening:   {listeners.where}", flush=True)
    config = uvicorn.Config(app, log_level="info", **options)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it handled
        uvicorn.Server(config).run(sockets=listeners.sockets)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
