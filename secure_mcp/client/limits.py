"""What a server may make the client hold: tool lists and results, bounded (with notes)."""

from __future__ import annotations

import json
from collections.abc import Callable

from mcp.types import CallToolResult, ContentBlock, TextContent, Tool

from secure_mcp.client.settings import ClientSettings
from secure_mcp.client.terminal import clean_line

MAX_SCHEMA_BYTES = 16 * 1024  # of one tool's input schema (sent to Claude with every question)
TRUNCATED = (
    "[truncated by the client: the result has {total:,} characters; the first {kept:,} are kept]"
)
DESCRIPTION_CUT = "\n[description cut by the client at {limit:,} characters]"


def bounded_tools(
    tools: list[Tool], settings: ClientSettings, note: Callable[[str], None]
) -> list[Tool]:
    """At most `max_tools` tools, descriptions cut, oversized schemas left out; each noted."""
    limit, kept = settings.max_description_chars, []
    if len(tools) > settings.max_tools:
        note(
            f"Note: the server offers more than {settings.max_tools} tools; "
            f"only the first {settings.max_tools} are used."
        )
    for tool in tools[: settings.max_tools]:
        if len(json.dumps(tool.input_schema)) > MAX_SCHEMA_BYTES:
            note(f"Note: left out tool {clean_line(tool.name)}: its input schema is too large.")
            continue
        if tool.description and len(tool.description) > limit:
            cut = tool.description[:limit] + DESCRIPTION_CUT.format(limit=limit)
            tool = tool.model_copy(update={"description": cut})
        kept.append(tool)
    return kept


def _text_size(result: CallToolResult) -> int:
    return sum(len(block.text) for block in result.content if block.type == "text")


def truncate_result(result: CallToolResult, limit: int) -> tuple[CallToolResult, str | None]:
    """`result` with at most `limit` characters of text, and a note saying what was cut.

    Text blocks are kept in order until the budget runs out (the last one cut, the rest
    dropped, the note appended as a text block, so Claude knows); structured content whose JSON
    is over the limit is dropped the same way. Other blocks are kept: their size is bounded by
    the response limit of the transport.
    """
    total = _text_size(result)
    structured = result.structured_content
    structured_size = len(json.dumps(structured)) if structured is not None else 0
    if total <= limit and structured_size <= limit:
        return result, None
    kept: list[ContentBlock] = []
    budget = limit
    for block in result.content:
        if block.type != "text":
            kept.append(block)
        elif budget > 0:
            kept.append(block.model_copy(update={"text": block.text[:budget]}))
            budget -= len(block.text[:budget])
    note = TRUNCATED.format(total=max(total, structured_size), kept=limit)
    kept.append(TextContent(type="text", text=note))
    trimmed = result.model_copy(
        update={
            "content": kept,
            "structured_content": structured if structured_size <= limit else None,
        }
    )
    return trimmed, note
