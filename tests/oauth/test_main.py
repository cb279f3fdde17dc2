"""oauth.py's main: start-up failures as one line and status 2, the banner, then serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.types import ASGIApp

from secure_mcp.common.listeners import Listeners
from secure_mcp.oauth.main import main, serve
from secure_mcp.oauth.settings import OAuthSettings
from tests.support.processes import free_port


def environment(tmp_path: Path) -> dict[str, str]:
    return {"OAUTH_DATA_DIR": str(tmp_path / "data"), "OAUTH_DEMO_PASSWORD": "a-long-password"}


class Recorder:
    """Stands in for uvicorn: records what would be served, then closes the sockets."""

    def __init__(self) -> None:
        self.served: list[tuple[ASGIApp, OAuthSettings, str]] = []

    def __call__(self, app: ASGIApp, settings: OAuthSettings, listeners: Listeners) -> None:
        self.served.append((app, settings, listeners.where))
        listeners.close()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_main_binds_prints_the_banner_and_serves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], host: str
) -> None:
    port = free_port()
    issuer = f"http://{host}:{port}"
    run = Recorder()
    argv = ["--host", host, "--port", str(port), "--issuer", issuer]
    assert main(argv, environment(tmp_path), run=run) == 0
    [(_, settings, where)] = run.served
    assert settings.issuer == issuer
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "OAuth 2.1 authorization server"
    assert out[-1] == f"  listening:   {where}"
    assert f"127.0.0.1:{port}" in where


def test_a_bad_setting_is_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {**environment(tmp_path), "OAUTH_PORT": "x"}
    assert main([], env, run=Recorder()) == 2
    assert capsys.readouterr().err == "oauth.py: OAUTH_PORT must be a number, got 'x'\n"
    assert main(["keys", "list"], env) == 2
    assert capsys.readouterr().err == "oauth.py: OAUTH_PORT must be a number, got 'x'\n"


def test_keys_runs_the_key_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "list"], environment(tmp_path)) == 0


def test_serve_returns_on_ctrl_c(tmp_path: Path) -> None:
    class Server:
        def __init__(self, config: uvicorn.Config) -> None:
            self.config = config

        def run(self, sockets: Any) -> None:
            raise KeyboardInterrupt

    settings = OAuthSettings(data_dir=tmp_path, demo_password="a-long-password")
    serve(object(), settings, Listeners([], ""), server=Server)  # type: ignore[arg-type]
