"""A scripted ToolSession and input reader for chat tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.types import CallToolResult, TextContent, Tool

ALERTS = Tool(
    name="get_alerts",
    description="Active weather alerts for a US state.\nTwo-letter code.",
    input_schema={
        "type": "object",
        "properties": {"state": {"type": "string"}},
        "required": ["state"],
    },
)
FORECAST = Tool(
    name="get_forecast",
    description="Forecast for a latitude and longitude.",
    input_schema={
        "type": "object",
        "properties": {"latitude": {"type": "number"}, "longitude": {"type": "number"}},
        "required": ["latitude", "longitude"],
    },
)
WEATHER_TOOLS = [ALERTS, FORECAST]

Outcome = CallToolResult | Exception | Callable[[dict[str, Any]], CallToolResult]


def text_result(text: str, *, is_error: bool = False) -> CallToolResult:
    """A tool result with one text block."""
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=is_error)


class FakeSession:
    """A ToolSession whose tools answer from a table; records every call."""

    def __init__(
        self, tools: list[Tool] | None = None, outcomes: dict[str, Outcome] | None = None
    ) -> None:
        self.tools = WEATHER_TOOLS if tools is None else tools
        self.outcomes = outcomes or {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.events: list[str] = []

    async def list_tools(self) -> list[Tool]:
        self.events.append("list_tools")
        return self.tools

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        self.calls.append((name, arguments))
        outcome = self.outcomes.get(name)
        if outcome is None:
            return text_result(f"{name} result for {arguments}")
        if isinstance(outcome, Exception):
            raise outcome
        if isinstance(outcome, CallToolResult):
            return outcome
        return outcome(arguments)

    async def login(self) -> None:
        self.events.append("login")

    async def logout(self) -> None:
        self.events.append("logout")


class Transcript:
    """Collects everything written, and echoes scripted input like a terminal would."""

    def __init__(self, *lines: str | BaseException) -> None:
        self.lines = list(lines)
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    async def read_line(self, prompt: str) -> str:
        if not self.lines:
            raise EOFError
        item = self.lines.pop(0)
        if isinstance(item, BaseException):
            raise item
        self.parts.append(f"{prompt}{item}\n")
        return item
