"""The MCP tools: active alerts for a state and the forecast for a point."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from secure_mcp.weather.formatting import (
    AlertsResult,
    ForecastResult,
    alerts_text,
    forecast_text,
    location_name,
    parse_alerts,
    parse_forecast,
)
from secure_mcp.weather.nws import NwsClient, NwsError

_STATE_LIST = (
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH "
    "NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY"
)
STATES = frozenset(_STATE_LIST.split())
TERRITORIES = frozenset({"AS", "GU", "MP", "PR", "VI"})
AREA_CODES = STATES | TERRITORIES
TOOL_NAMES = ("get_alerts", "get_forecast")  # what --tool-scopes may name
READ_ONLY = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=True)
REPLAY_NOTE = "[Replay mode: recorded National Weather Service data, not live weather.]"


def area_code(state: str) -> str:
    """The upper-case code of a US state or territory, or a ToolError listing the accepted ones."""
    code = state.strip().upper()
    if code not in AREA_CODES:
        raise ToolError(
            f"{state!r} is not a two-letter US state or territory code. Accepted: "
            f"{', '.join(sorted(STATES))}; territories {', '.join(sorted(TERRITORIES))}."
        )
    return code


def _result(text: str, data: BaseModel, replay: bool) -> CallToolResult:
    """A tool result with readable text and the structured content it describes.

    From recordings, both say so: the text (what Claude reads) starts with `REPLAY_NOTE`, and
    the structured content (what `--call` prints) has `"replay": true`.
    """
    if replay:
        text = f"{REPLAY_NOTE}\n{text}"
        data = data.model_copy(update={"replay": True})
    structured: dict[str, Any] = data.model_dump(mode="json")
    content = [TextContent(type="text", text=text)]
    return CallToolResult(content=content, structured_content=structured)


def register_tools(server: MCPServer[Any], nws: NwsClient, *, replay: bool = False) -> None:
    """Add `get_alerts` and `get_forecast`, both backed by `nws` (`replay`: recordings)."""

    @server.tool(title="Active weather alerts", annotations=READ_ONLY)
    async def get_alerts(
        state: Annotated[str, Field(description="two-letter US state or territory code, e.g. CA")],
    ) -> Annotated[CallToolResult, AlertsResult]:
        """Active National Weather Service alerts for a US state or territory."""
        code = area_code(state)
        try:
            body = await nws.active_alerts(code)
        except NwsError as exc:
            raise ToolError(str(exc)) from exc
        result = parse_alerts(code, body)
        return _result(alerts_text(result), result, replay)

    @server.tool(title="Weather forecast", annotations=READ_ONLY)
    async def get_forecast(
        latitude: Annotated[float, Field(ge=-90, le=90, description="degrees north")],
        longitude: Annotated[float, Field(ge=-180, le=180, description="degrees east")],
    ) -> Annotated[CallToolResult, ForecastResult]:
        """The next forecast periods for a point in the US (National Weather Service)."""
        try:
            point, body = await nws.forecast(latitude, longitude)
        except NwsError as exc:
            raise ToolError(str(exc)) from exc
        result = parse_forecast(latitude, longitude, location_name(point), body)
        return _result(forecast_text(result), result, replay)
