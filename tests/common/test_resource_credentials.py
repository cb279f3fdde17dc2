"""The shared credentials file: private, atomic, strict about its shape."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from secure_mcp.common import resource_credentials as rc
from secure_mcp.common.paths import (
    default_client_state_dir,
    default_oauth_data_dir,
    oauth_data_dir,
)
from secure_mcp.common.private_files import read_json, write_private_text


def test_round_trip_is_private(tmp_path: Path) -> None:
    creds = {"http://127.0.0.1:8000/mcp": rc.ResourceCredentials("rs-1", "s3cret")}
    rc.save_all(tmp_path / "data", creds)
    path = rc.credentials_path(tmp_path / "data")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert rc.load_all(tmp_path / "data") == creds


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert rc.load_all(tmp_path) == {}


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("not json", id="not-json"),
        pytest.param("[]", id="not-object"),
        pytest.param('{"resources": []}', id="resources-not-object"),
        pytest.param('{"resources": {"r": {"client_id": "x"}}}', id="no-secret"),
        pytest.param('{"resources": {"r": {"client_id": 1, "client_secret": "y"}}}', id="bad-id"),
    ],
)
def test_malformed_file_is_an_error(tmp_path: Path, content: str) -> None:
    rc.credentials_path(tmp_path).write_text(content)
    with pytest.raises(rc.CredentialsError):
        rc.load_all(tmp_path)


def test_secret_not_in_repr() -> None:
    text = repr(rc.ResourceCredentials("rs-1", "s3cret"))
    assert "s3cret" not in text
    assert "rs-1" in text


def test_env_credentials() -> None:
    assert rc.credentials_from_env({}) is None
    env = {rc.ENV_CLIENT_ID: "id", rc.ENV_CLIENT_SECRET: "sec"}
    assert rc.credentials_from_env(env) == rc.ResourceCredentials("id", "sec")
    with pytest.raises(rc.CredentialsError, match="both"):
        rc.credentials_from_env({rc.ENV_CLIENT_ID: "id"})


def test_default_dirs_follow_xdg(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "d"), "XDG_CONFIG_HOME": str(tmp_path / "c")}
    assert default_oauth_data_dir(env) == tmp_path / "d/secure-mcp/oauth"
    assert default_client_state_dir(env) == tmp_path / "c/secure-mcp/client"
    relative = {"XDG_DATA_HOME": "relative/ignored"}
    assert default_oauth_data_dir(relative) == Path.home() / ".local/share/secure-mcp/oauth"
    assert oauth_data_dir({"OAUTH_DATA_DIR": str(tmp_path)}) == tmp_path
    assert oauth_data_dir({"OAUTH_DATA_DIR": "x"}, flag=str(tmp_path / "f")) == tmp_path / "f"
    assert oauth_data_dir({}) == default_oauth_data_dir({})


def test_failed_write_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.json"
    write_private_text(target, '{"a": 1}')

    def boom(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_private_text(target, '{"a": 2}')
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
    assert json.loads(target.read_text()) == {"a": 1}
