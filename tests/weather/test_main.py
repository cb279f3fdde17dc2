"""weather.py's main: start-up failures as one line and status 2, the banner, then serving."""

from __future__ import annotations

from typing import Any

import pytest

from secure_mcp.weather.main import main
from secure_mcp.weather.settings import WeatherSettings

ENV_CREDS = {"INTROSPECTION_CLIENT_ID": "rs", "INTROSPECTION_CLIENT_SECRET": "s3cret"}


def test_one_process_is_served_by_uvicorn_without_access_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls: list[dict[str, Any]] = []
    assert main(["--port", "8123"], ENV_CREDS, run=lambda app, **kw: calls.append(kw)) == 0
    [options] = calls
    assert (options["host"], options["port"], options["access_log"]) == ("127.0.0.1", 8123, False)
    assert capsys.readouterr().out.startswith("weather: MCP endpoint http://127.0.0.1:8123/mcp")


def test_workers_are_supervised(capsys: pytest.CaptureFixture[str]) -> None:
    started: list[WeatherSettings] = []
    assert main(["--workers", "2"], ENV_CREDS, run_workers=started.append) == 0
    assert started[0].workers == 2
    assert "weather: 2 worker processes" in capsys.readouterr().out


def test_a_bad_setting_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], {**ENV_CREDS, "WEATHER_PORT": "x"}) == 2
    assert capsys.readouterr().err == "weather.py: WEATHER_PORT must be a number, got 'x'\n"
