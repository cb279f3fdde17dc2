"""The generated demo password is kept in the data folder: the same at every start."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from secure_mcp.common.private_files import UnsafePathError
from secure_mcp.oauth.banner import banner
from secure_mcp.oauth.demo_password import DEMO_PASSWORD_FILE, keep_demo_password
from secure_mcp.oauth.settings import SettingsError, settings_from


def test_a_generated_password_survives_restarts(tmp_path: Path) -> None:
    env = {"OAUTH_DATA_DIR": str(tmp_path / "data")}
    first = keep_demo_password(settings_from([], env))
    path = tmp_path / "data" / DEMO_PASSWORD_FILE
    assert path.read_text() == first.demo_password + "\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    again = keep_demo_password(settings_from([], env))  # a new start draws a new one: unused
    assert again.demo_password == first.demo_password
    assert again.demo_password_generated
    text = "\n".join(banner(again))
    assert f"password {again.demo_password}" in text
    assert f"(kept in {path}; set OAUTH_DEMO_PASSWORD to choose one)" in text


def test_oauth_demo_password_still_wins(tmp_path: Path) -> None:
    env = {"OAUTH_DATA_DIR": str(tmp_path)}
    keep_demo_password(settings_from([], env))
    stored = (tmp_path / DEMO_PASSWORD_FILE).read_text()
    chosen = keep_demo_password(
        settings_from([], {**env, "OAUTH_DEMO_PASSWORD": "chosen-password-1"})
    )
    assert chosen.demo_password == "chosen-password-1"
    assert (tmp_path / DEMO_PASSWORD_FILE).read_text() == stored  # left alone
    assert "chosen-password-1" not in "\n".join(banner(chosen))


def test_a_stored_password_too_short_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / DEMO_PASSWORD_FILE).write_text("short\n")
    (tmp_path / DEMO_PASSWORD_FILE).chmod(0o600)
    with pytest.raises(SettingsError) as caught:
        keep_demo_password(settings_from([], {"OAUTH_DATA_DIR": str(tmp_path)}))
    assert str(caught.value) == (
        f"the demo password in {tmp_path / DEMO_PASSWORD_FILE} must be at least 12 characters "
        "(delete the file for a new one)"
    )


def test_a_planted_password_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / DEMO_PASSWORD_FILE).write_text("planted-by-someone\n")
    (tmp_path / DEMO_PASSWORD_FILE).chmod(0o666)
    with pytest.raises(UnsafePathError, match="is writable by other users"):
        keep_demo_password(settings_from([], {"OAUTH_DATA_DIR": str(tmp_path)}))
