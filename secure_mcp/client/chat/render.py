"""How the terminal shows tools, tool calls and their results."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mcp.types import CallToolResult, Tool

from secure_mcp.client.chat.tools import result_json, result_text

Write = Callable[[str], None]
"""Writes text exactly as given (no newline added): streamed answers arrive in pieces."""

PREVIEW_CHARS = 160


def one_line(text: str, limit: int = PREVIEW_CHARS) -> str:
    """`text` on one line (whitespace collapsed), cut to `limit` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def compact_json(value: Any) -> str:
    """`value` as one line of JSON, non-ASCII kept readable."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def show_tool_call(write: Write, name: str, arguments: Any) -> None:
    """One line naming the tool Claude calls and its arguments."""
    write(f"  ⚙ {name} {one_line(compact_json(arguments))}\n")


def show_tool_result(write: Write, result: CallToolResult) -> None:
    """One short line of a tool's result; errors say so."""
    label = "error: " if result.is_error else ""
    write(f"  ↳ {label}{one_line(result_text(result))}\n")


def show_tool_failure(write: Write, message: str) -> None:
    """One line for a tool call that failed before giving a result."""
    write(f"  ↳ error: {one_line(message)}\n")


def show_tools(write: Write, tools: list[Tool]) -> None:
    """The server's tools, one per line with the first line of the description."""
    if not tools:
        write("The server offers no tools.\n")
        return
    width = max(len(tool.name) for tool in tools)
    for tool in tools:
        summary = (tool.description or "").strip().splitlines()
        write(f"  {tool.name.ljust(width)}  {summary[0] if summary else ''}".rstrip() + "\n")


def show_result_json(write: Write, result: CallToolResult) -> None:
    """A tool result as indented JSON (what `/call` and `--call` print)."""
    write(json.dumps(result_json(result), indent=2, ensure_ascii=False) + "\n")
