"""The demo user's password: OAUTH_DEMO_PASSWORD, else one generated once and kept.

A local-demo convenience. The generated password is written to the data folder (0600) at the
first start and read back at every later one, so it survives restarts (and a second oauth.py
pointed at the same folder prints the password that actually works). The one place that knows
the file: storage of shared secrets elsewhere (a database) would replace this module.
"""

from __future__ import annotations

import dataclasses

from secure_mcp.common.private_files import (
    check_private_dir,
    check_private_file,
    write_private_text,
)
from secure_mcp.common.settings import SettingsError
from secure_mcp.oauth.settings import MIN_PASSWORD_LENGTH, OAuthSettings

DEMO_PASSWORD_FILE = "demo-password"  # noqa: S105 - a file name


def keep_demo_password(settings: OAuthSettings) -> OAuthSettings:
    """`settings` with the kept demo password (stored now if this is the first start).

    Raises SettingsError for a stored password that is too short, and UnsafePathError (an
    OSError) for a folder or file someone else could have written.
    """
    if not settings.demo_password_generated:
        return settings  # OAUTH_DEMO_PASSWORD wins, and is never written anywhere
    check_private_dir(settings.data_dir)  # created 0700; ours alone, or refused
    path = settings.data_dir / DEMO_PASSWORD_FILE
    check_private_file(path)
    if not path.exists():
        write_private_text(path, settings.demo_password + "\n")
        return settings
    stored = path.read_text(encoding="utf-8").strip()
    if len(stored) < MIN_PASSWORD_LENGTH:
        raise SettingsError(
            f"the demo password in {path} must be at least {MIN_PASSWORD_LENGTH} characters "
            "(delete the file for a new one)"
        )
    return dataclasses.replace(settings, demo_password=stored)
