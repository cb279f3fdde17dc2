"""Replay mode answers like the NWS from bundled recordings and never leaves the process."""

from __future__ import annotations

import httpx2
import pytest

from secure_mcp.weather.app import Seams, build_app, transport_security
from secure_mcp.weather.replay import fixture_json, handle, replay_transport
from tests.support.weather_app import make_settings


async def get(path: str) -> httpx2.Response:
    """A request through the replay transport."""
    async with httpx2.AsyncClient(transport=replay_transport()) as http:
        return await http.get(f"https://api.weather.gov{path}")


@pytest.mark.parametrize(
    ("path", "status", "kind"),
    [
        pytest.param("/alerts/active?area=fl", 200, "FeatureCollection", id="alerts-FL"),
        pytest.param("/alerts/active?area=WY", 200, "FeatureCollection", id="alerts-none"),
        pytest.param("/points/40.7,-74", 200, "Feature", id="point-in-US"),
        pytest.param("/points/13.4,144.7", 200, "Feature", id="point-Guam"),
        pytest.param(
            "/points/51.5,-0.12",
            404,
            "https://api.weather.gov/problems/InvalidPoint",
            id="point-London",
        ),
        pytest.param("/gridpoints/SGX/38,66/forecast", 200, "Feature", id="forecast"),
    ],
)
async def test_replay_answers(path: str, status: int, kind: str) -> None:
    response = await get(path)
    assert response.status_code == status
    assert response.json()["type"] == kind


async def test_unrecorded_path_is_404() -> None:
    assert (await get("/stations")).status_code == 404


def test_fixture_json_is_the_recorded_body() -> None:
    assert fixture_json("alerts_active_empty.json")["features"] == []


def test_transport_security_allows_public_resource_host() -> None:
    settings = make_settings(host="10.0.0.5", port=8080, resource_url="https://wx.example/mcp")
    security = transport_security(settings)
    assert security.allowed_hosts == ["10.0.0.5:8080", "wx.example"]
    assert "https://wx.example" in security.allowed_origins
    assert "http://localhost:8080" not in security.allowed_origins


async def test_injected_sleep_seam_is_used() -> None:
    async def sleep(_: float) -> None:
        """Never called here."""

    app = build_app(make_settings(nws_replay=False), seams=Seams(nws_sleep=sleep))
    assert app is not None


async def test_results_from_recordings_say_so() -> None:
    """For Claude (the text) and for /call and --call (the structured content)."""
    from mcp import Client
    from mcp.server.mcpserver import MCPServer

    from secure_mcp.weather.nws import NwsClient
    from secure_mcp.weather.tools import REPLAY_NOTE, register_tools

    server: MCPServer = MCPServer("replay-test")
    nws = NwsClient("https://api.weather.gov", "ua", transport=replay_transport())
    register_tools(server, nws, replay=True)
    async with Client(server) as client:
        alerts = await client.call_tool("get_alerts", {"state": "FL"})
        forecast = await client.call_tool("get_forecast", {"latitude": 33.8, "longitude": -117.9})
        listed = await client.list_tools()
    for result in (alerts, forecast):
        assert result.structured_content is not None
        assert result.structured_content["replay"] is True
        assert result.content[0].text.startswith(REPLAY_NOTE + "\n")
    for tool in listed.tools:
        assert tool.output_schema is not None
        assert "replay" in tool.output_schema["properties"]


def test_replayed_requests_are_not_logged_as_sent(caplog: pytest.LogCaptureFixture) -> None:
    """httpx2 logs `HTTP Request: GET https://api.weather.gov/...` for the in-process transport
    too; in replay mode weather.py's log says what really happened instead."""
    import logging

    from secure_mcp.weather.replay import hide_replayed_requests

    hide_replayed_requests("https://api.weather.gov")
    hide_replayed_requests("https://api.weather.gov")  # idempotent
    caplog.set_level("INFO")
    with httpx2.Client(transport=httpx2.MockTransport(handle)) as http:
        http.get("https://api.weather.gov/alerts/active?area=HI")
    with httpx2.Client(transport=httpx2.MockTransport(lambda r: httpx2.Response(200))) as http:
        http.post("http://localhost:8003/introspect")
    messages = [r.getMessage() for r in caplog.records]
    assert not any("api.weather.gov" in m for m in messages)
    assert "NWS replay: GET /alerts/active?area=HI answered from a recording (nothing sent)" in (
        messages
    )
    assert any("localhost:8003/introspect" in m for m in messages)  # other requests still are
    httpx2_logger = logging.getLogger("httpx2")
    assert len(httpx2_logger.filters) == 1
