"""The MCP tools over the in-memory client: readable text, structured content, tool errors."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, ListToolsResult, TextContent

from secure_mcp.weather.nws import NwsClient
from secure_mcp.weather.tools import register_tools
from tests.support.nws_fixtures import (
    ALERTS_EMPTY,
    ALERTS_FL,
    ALERTS_HI,
    POINT_404,
    PROBLEM_500,
    ScriptedNws,
    forecast_script,
    recorded,
)

ANAHEIM = {"latitude": 33.8, "longitude": -117.882}


async def no_sleep(_: float) -> None:
    """Retries without waiting."""


@pytest.fixture
def script() -> ScriptedNws:
    """The fake NWS the tools talk to."""
    return forecast_script()


class Tools:
    """Calls the weather tools through a fresh in-memory MCP client each time."""

    def __init__(self, script: ScriptedNws) -> None:
        self.server: MCPServer[Any] = MCPServer("weather-test")
        nws = NwsClient("https://nws.test", "ua", transport=script.transport(), sleep=no_sleep)
        register_tools(self.server, nws)

    async def call_tool(self, name: str, args: dict[str, Any]) -> CallToolResult:
        """One tool call."""
        async with Client(self.server) as client:
            return await client.call_tool(name, args)

    async def list_tools(self) -> ListToolsResult:
        """The advertised tools."""
        async with Client(self.server) as client:
            return await client.list_tools()


@pytest.fixture
def tools(script: ScriptedNws) -> Tools:
    """The weather tools over the fake NWS."""
    return Tools(script)


def text(result: CallToolResult) -> str:
    """The single text block of a result."""
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


async def test_alerts_with_several_features(tools: Tools, script: ScriptedNws) -> None:
    script.on("/alerts/active", recorded(ALERTS_HI))
    result = await tools.call_tool("get_alerts", {"state": " hi "})
    assert not result.is_error
    assert script.requests[-1].url.params["area"] == "HI"
    data = result.structured_content
    assert data is not None
    assert (data["state"], data["count"]) == ("HI", 5)
    events = [a["event"] for a in data["alerts"]]
    assert events[0] == "Flash Flood Warning"
    assert "Hurricane Warning" in events
    body = text(result)
    assert body.startswith("5 active alert(s) for HI:")
    assert "Event: Flash Flood Warning" in body
    assert "Severity: Severe" in body


async def test_alerts_null_fields_do_not_crash(tools: Tools, script: ScriptedNws) -> None:
    script.on("/alerts/active", recorded(ALERTS_FL))
    result = await tools.call_tool("get_alerts", {"state": "FL"})
    assert not result.is_error
    assert result.structured_content is not None
    statement = result.structured_content["alerts"][2]
    assert statement["event"] == "Tropical Cyclone Statement"
    assert statement["instruction"] is None
    assert "Instructions: not given" in text(result)


async def test_no_alerts(tools: Tools, script: ScriptedNws) -> None:
    script.on("/alerts/active", recorded(ALERTS_EMPTY))
    result = await tools.call_tool("get_alerts", {"state": "ca"})
    assert not result.is_error
    assert text(result) == "No active weather alerts for CA."
    assert result.structured_content == {"state": "CA", "count": 0, "alerts": [], "replay": False}


@pytest.mark.parametrize("state", ["XX", "California", "", "C"])
async def test_unknown_state_lists_accepted_codes(tools: Tools, state: str) -> None:
    result = await tools.call_tool("get_alerts", {"state": state})
    assert result.is_error
    message = text(result)
    assert "is not a two-letter US state or territory code" in message
    assert "AK, AL, AR" in message
    assert "territories AS, GU, MP, PR, VI" in message


async def test_forecast(tools: Tools) -> None:
    result = await tools.call_tool("get_forecast", ANAHEIM)
    assert not result.is_error
    data = result.structured_content
    assert data is not None
    assert data["location"] == "Anaheim, CA"
    assert len(data["periods"]) == 6
    assert data["periods"][0] == {
        "name": "Today",
        "start_time": "2026-07-02T06:00:00-07:00",
        "temperature": 78.0,
        "temperature_unit": "F",
        "wind": "0 to 10 mph SW",
        "precipitation_chance": 0.0,
        "short_forecast": "Mostly Sunny",
        "detailed_forecast": "Mostly sunny, with a high near 78. Southwest wind 0 to 10 mph.",
    }
    assert text(result).startswith("Forecast for Anaheim, CA:\nToday: 78°F, wind 0 to 10 mph SW")


async def test_point_outside_coverage(tools: Tools, script: ScriptedNws) -> None:
    script.on("/points/25.048,-77.3554", recorded(POINT_404, 404))
    result = await tools.call_tool("get_forecast", {"latitude": 25.048, "longitude": -77.3554})
    assert result.is_error
    assert "outside the US National Weather Service area" in text(result)


@pytest.mark.parametrize(
    ("step", "message"),
    [
        pytest.param(recorded(PROBLEM_500, 500), "having problems (HTTP 500", id="500"),
        pytest.param(httpx2.ReadTimeout("slow"), "did not answer in time", id="timeout"),
        pytest.param(httpx2.Response(200, text="{oops"), "not valid JSON", id="malformed-json"),
    ],
)
async def test_upstream_failures_are_tool_errors(step: Any, message: str) -> None:
    tools = Tools(forecast_script([step, step, step]))
    result = await tools.call_tool("get_forecast", ANAHEIM)
    alerts = await tools.call_tool("get_alerts", {"state": "CA"})
    assert result.is_error
    assert message in text(result)
    assert "Traceback" not in text(result)
    assert alerts.is_error  # unscripted path: a 404 from upstream, still a clean tool error


async def test_429_then_success(tools: Tools, script: ScriptedNws) -> None:
    script.on(
        "/alerts/active", httpx2.Response(429, headers={"retry-after": "1"}), recorded(ALERTS_EMPTY)
    )
    result = await tools.call_tool("get_alerts", {"state": "CA"})
    assert not result.is_error
    assert script.paths().count("/alerts/active") == 2


@pytest.mark.parametrize(
    "args",
    [
        pytest.param({"latitude": 91, "longitude": 0}, id="latitude-high"),
        pytest.param({"latitude": -91, "longitude": 0}, id="latitude-low"),
        pytest.param({"latitude": 0, "longitude": 180.5}, id="longitude-high"),
        pytest.param({"latitude": "north", "longitude": 0}, id="not-a-number"),
    ],
)
async def test_forecast_arguments_are_range_checked(
    tools: Tools, script: ScriptedNws, args: dict[str, Any]
) -> None:
    result = await tools.call_tool("get_forecast", args)
    assert result.is_error
    assert script.requests == []


async def test_tools_advertise_output_schemas(tools: Tools) -> None:
    listed = {tool.name: tool for tool in (await tools.list_tools()).tools}
    assert set(listed) == {"get_alerts", "get_forecast"}
    forecast = listed["get_forecast"]
    assert forecast.output_schema is not None
    assert forecast.input_schema["properties"]["latitude"]["maximum"] == 90
    assert listed["get_alerts"].annotations is not None
    assert listed["get_alerts"].annotations.read_only_hint is True
