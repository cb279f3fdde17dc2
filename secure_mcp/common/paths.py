"""Default locations of the programs' state on disk."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

APP_DIR_NAME = "secure-mcp"


def _xdg_dir(env: Mapping[str, str], variable: str, fallback: str) -> Path:
    """An XDG base directory: `$variable` when absolute, else `~/<fallback>`."""
    value = env.get(variable, "")
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def default_oauth_data_dir(env: Mapping[str, str]) -> Path:
    """Where oauth.py keeps its SQLite file and generated secrets (weather.py reads it too)."""
    return _xdg_dir(env, "XDG_DATA_HOME", ".local/share") / APP_DIR_NAME / "oauth"


def default_client_state_dir(env: Mapping[str, str]) -> Path:
    """Where client.py keeps client registrations and tokens."""
    return _xdg_dir(env, "XDG_CONFIG_HOME", ".config") / APP_DIR_NAME / "client"


def default_demo_log_dir(env: Mapping[str, str]) -> Path:
    """Where demo.py writes the logs of the servers it starts."""
    return _xdg_dir(env, "XDG_STATE_HOME", ".local/state") / APP_DIR_NAME / "demo"


def oauth_data_dir(env: Mapping[str, str], flag: str | None = None) -> Path:
    """The authorization server's data folder: flag, then `OAUTH_DATA_DIR`, then the default."""
    chosen = flag or env.get("OAUTH_DATA_DIR", "")
    return Path(chosen).expanduser() if chosen else default_oauth_data_dir(env)
