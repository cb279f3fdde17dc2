"""MCP tools and results to and from Claude's Messages API shapes (with the SDK's MCP helpers)."""

from __future__ import annotations

import json

from anthropic.lib.tools.mcp import UnsupportedMCPValueError, mcp_content
from anthropic.types import ToolParam, ToolResultBlockParam
from anthropic.types.tool_result_block_param import Content
from mcp.types import CallToolResult, ContentBlock, Tool

from secure_mcp.client.chat.results import result_json, result_text

__all__ = [
    "claude_tool",
    "claude_tools",
    "result_content",
    "result_json",
    "result_text",
    "tool_failure_block",
    "tool_result_block",
]

EMPTY_RESULT = "(the tool returned no content)"


def claude_tool(tool: Tool) -> ToolParam:
    """An MCP tool as a Claude tool definition (name, description, JSON Schema of the input)."""
    param: ToolParam = {"name": tool.name, "input_schema": dict(tool.input_schema)}
    if tool.description:
        param["description"] = tool.description
    return param


def claude_tools(tools: list[Tool]) -> list[ToolParam]:
    """Every MCP tool as a Claude tool definition, in the server's order."""
    return [claude_tool(tool) for tool in tools]


def _claude_content(block: ContentBlock) -> Content:
    """One MCP content block for Claude; kinds Claude cannot take become a text note."""
    try:
        return mcp_content(block)
    except UnsupportedMCPValueError as exc:
        return {"type": "text", "text": f"[{exc}]"}


def result_content(result: CallToolResult) -> list[Content]:
    """The content Claude sees for a tool result: the blocks, else structured content as JSON."""
    if result.content:
        return [_claude_content(block) for block in result.content]
    if result.structured_content is not None:
        return [{"type": "text", "text": json.dumps(result.structured_content)}]
    return [{"type": "text", "text": EMPTY_RESULT}]


def tool_result_block(tool_use_id: str, result: CallToolResult) -> ToolResultBlockParam:
    """A `tool_result` block answering one `tool_use`; MCP `isError` becomes `is_error`."""
    return {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": result_content(result),
        "is_error": bool(result.is_error),
    }


def tool_failure_block(tool_use_id: str, message: str) -> ToolResultBlockParam:
    """A `tool_result` block for a call that raised: Claude sees the failure, the loop goes on."""
    return {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": [{"type": "text", "text": message}],
        "is_error": True,
    }
