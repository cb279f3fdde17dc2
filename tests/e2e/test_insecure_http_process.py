"""The real entry points refuse plain http off loopback in one line, unless told otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.oauth_server import run_oauth_server
from tests.support.processes import ROOT

pytestmark = pytest.mark.process


def _run(program: str, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run an entry point to completion (it must refuse to start)."""
    return subprocess.run(
        [sys.executable, str(ROOT / program), *argv],
        cwd=ROOT,
        env={"PATH": "/usr/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("program", "argv", "flag"),
    [
        pytest.param("oauth.py", ["--issuer", "http://as.example"], "--issuer", id="oauth-issuer"),
        pytest.param(
            "weather.py", ["--resource-url", "http://wx.example/mcp"], "--resource-url", id="rs"
        ),
    ],
)
def test_plain_http_off_loopback_stops_with_one_line(
    tmp_path: Path, program: str, argv: list[str], flag: str
) -> None:
    env = {
        "OAUTH_DATA_DIR": str(tmp_path),
        "INTROSPECTION_CLIENT_ID": "rs",
        "INTROSPECTION_CLIENT_SECRET": "s3cret",
    }
    result = _run(program, argv, env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(program)
    assert flag in lines[0]
    assert "--allow-insecure-http" in lines[0]
    assert not (tmp_path / "oauth.sqlite3").exists()  # nothing was created


def test_development_flag_starts_with_a_loud_banner(tmp_path: Path) -> None:
    env = {"OAUTH_RESOURCES": "http://mcp.example/mcp", "OAUTH_ALLOW_INSECURE_HTTP": "1"}
    with run_oauth_server(tmp_path, resources=["http://mcp.example/mcp"], extra_env=env) as server:
        out = server.program.output()
    assert "--allow-insecure-http / OAUTH_ALLOW_INSECURE_HTTP is on" in out
    assert "!" * 78 in out
