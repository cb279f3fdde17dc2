"""How the terminal shows tools, tool calls and their results (server and model text cleaned)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from typing import Any

from mcp.types import CallToolResult, Tool

from secure_mcp.client.chat.calls import argument_text, arguments_of, signature
from secure_mcp.client.chat.results import result_json, result_text
from secure_mcp.client.terminal import Styled, clean, clean_line

Write = Callable[[str], None]
"""Writes text exactly as given (no newline added): streamed answers arrive in pieces."""

PREVIEW_CHARS = 160
CALL_PREFIX = "  ⚙ "
WRAP_INDENT = "      "


def one_line(text: str, limit: int = PREVIEW_CHARS) -> str:
    """`text` cleaned onto one line (whitespace collapsed), cut to `limit` with an ellipsis."""
    flat = " ".join(clean_line(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def compact_json(value: Any) -> str:
    """`value` as one line of JSON, non-ASCII kept readable."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def terminal_width() -> int:
    """Columns to wrap at: the terminal's, within 40 and 200 (100 when not a terminal)."""
    return min(max(shutil.get_terminal_size((100, 24)).columns, 40), 200)


_UNITS = re.compile(r"\\u[0-9a-fA-F]{4}|\\.|.", re.DOTALL)  # an escape stays on one line


def hard_wrap(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` characters: every character kept, none dropped."""
    lines, line = [], ""
    for unit in _UNITS.findall(text):
        if line and len(line) + len(unit) > width:
            lines.append(line)
            line = ""
        line += unit
    return [*lines, line]


def tool_call_text(name: str, arguments: Any, width: int) -> str:
    """The tool-call line: the tool and its complete arguments, wrapped at `width`, never cut."""
    head = f"{CALL_PREFIX}{clean_line(name)}"
    body = clean_line(compact_json(arguments))
    if len(head) + 1 + len(body) <= width:
        return f"{head} {body}\n"
    pieces = hard_wrap(body, max(width - len(WRAP_INDENT), 20))
    return head + "\n" + "".join(f"{WRAP_INDENT}{piece}\n" for piece in pieces)


def show_tool_call(write: Write, name: str, arguments: Any, width: int | None = None) -> None:
    """The tool Claude calls with all of its arguments, in the client's own (bold) style."""
    write(Styled(tool_call_text(name, arguments, width or terminal_width())))


def show_tool_result(write: Write, result: CallToolResult) -> None:
    """One short line of a tool's result; errors say so."""
    label = "error: " if result.is_error else ""
    write(f"  ↳ {label}{one_line(result_text(result))}\n")


def show_tool_failure(write: Write, message: str) -> None:
    """One line for a tool call that failed before giving a result."""
    write(f"  ↳ error: {one_line(message)}\n")


def show_tools(write: Write, tools: list[Tool]) -> None:
    """The server's tools: each with its arguments, the whole description the model sees, and
    what each argument takes (all cleaned)."""
    if not tools:
        write("The server offers no tools.\n")
        return
    for tool in tools:
        write(f"  {signature(tool)}\n")
        description = clean((tool.description or "").strip())
        for line in description.splitlines():
            write(f"      {line}".rstrip() + "\n")
        declared, needed = arguments_of(tool)
        for name, schema in declared.items():
            write(f"      - {argument_text(name, schema, optional=name not in needed)}\n")


def show_result(write: Write, name: str, result: CallToolResult) -> None:
    """A tool result for a person (`/call`): its text, other blocks named; errors say so."""
    if result.is_error:
        write(f"{clean_line(name)} reported an error:\n")
    parts = []
    for block in result.content:
        if block.type == "text":
            parts.append(block.text)
        else:
            kind = getattr(block, "mime_type", None) or getattr(block, "uri", None) or ""
            parts.append(f"[{block.type}{' ' + str(kind) if kind else ''}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, indent=2, ensure_ascii=False))
    text = "\n".join(parts).rstrip("\n") or "(the tool returned no content)"
    write(clean(text) + "\n")


def show_result_json(write: Write, result: CallToolResult) -> None:
    """A tool result as indented JSON (what `/call` and `--call` print); still valid JSON."""
    write(clean(json.dumps(result_json(result), indent=2, ensure_ascii=False)) + "\n")
