"""oauth.py: settings, migrated storage and bound sockets first, then the banner, then uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from secure_mcp.common.http_guard import uvicorn_options
from secure_mcp.common.listeners import Listeners, host_listener, loopback_listeners
from secure_mcp.common.settings import SettingsError, fail, show
from secure_mcp.oauth import keys_cli
from secure_mcp.oauth.app import build_app, prepare
from secure_mcp.oauth.banner import banner
from secure_mcp.oauth.demo_password import keep_demo_password
from secure_mcp.oauth.settings import OAuthSettings, settings_from
from secure_mcp.oauth.signing_keys import KeyStoreError
from secure_mcp.oauth.storage import StorageError

PROGRAM = "oauth.py"
Serve = Callable[[ASGIApp, OAuthSettings, Listeners], None]


def bind(settings: OAuthSettings) -> Listeners:
    """The listening sockets: both 127.0.0.1 and ::1 for `localhost` (or no start), else one."""
    if settings.host.lower() == "localhost":
        return loopback_listeners(settings.port)
    return host_listener(settings.host, settings.port)


def serve(
    app: ASGIApp,
    settings: OAuthSettings,
    listeners: Listeners,
    server: Callable[[uvicorn.Config], Any] = uvicorn.Server,
) -> None:
    """uvicorn on the bound sockets, with the slow-client and connection limits, until Ctrl-C."""
    config = uvicorn.Config(app, log_level="info", **uvicorn_options(settings.connection_limits))
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it handled
        server(config).run(sockets=listeners.sockets)


def main(argv: Sequence[str], env: Mapping[str, str], run: Serve = serve) -> int:
    """Read flags and environment, print where to find the server, serve until Ctrl-C."""
    if argv[:1] == ["keys"]:  # `oauth.py keys list|rotate`: the JWT signing keys
        try:
            return keys_cli.main(argv[1:], env)
        except (SettingsError, OSError, KeyStoreError) as exc:
            return fail(PROGRAM, exc)
    try:
        settings = keep_demo_password(settings_from(argv, env))
        app = build_app(settings)
        asyncio.run(prepare(settings))  # migrated (or refused) before anything is served
        # Bound before the banner: a taken port stops us before we print a password that
        # belongs to whatever already listens there.
        listeners = bind(settings)
    except (SettingsError, StorageError, OSError) as exc:
        return fail(PROGRAM, exc)
    show([*banner(settings), f"  listening:   {listeners.where}"])
    run(app, settings, listeners)
    return 0
