"""MCP tools and results in Claude's shapes, and how they are shown."""

from __future__ import annotations

import base64

from mcp.types import AudioContent, CallToolResult, ImageContent, TextContent, Tool

from secure_mcp.client.chat.render import one_line, show_result, show_result_json, show_tools
from secure_mcp.client.chat.tools import (
    EMPTY_RESULT,
    claude_tool,
    result_content,
    result_json,
    result_text,
    tool_result_block,
)
from tests.support.chat_session import ALERTS, Transcript, text_result

PNG = base64.b64encode(b"\x89PNG fake").decode()


def test_tool_definition_keeps_name_description_and_schema() -> None:
    assert claude_tool(ALERTS) == {
        "name": "get_alerts",
        "description": ALERTS.description,
        "input_schema": ALERTS.input_schema,
    }


def test_tool_without_description_has_none() -> None:
    tool = Tool(name="ping", input_schema={"type": "object"})
    assert claude_tool(tool) == {"name": "ping", "input_schema": {"type": "object"}}


def test_result_blocks_are_converted_and_unsupported_kinds_noted() -> None:
    result = CallToolResult(
        content=[
            TextContent(type="text", text="hi"),
            ImageContent(type="image", data=PNG, mime_type="image/png"),
            AudioContent(type="audio", data=PNG, mime_type="audio/wav"),
        ]
    )
    content = result_content(result)
    assert content[0] == {"type": "text", "text": "hi"}
    assert content[1] == {
        "type": "image",
        "source": {"type": "base64", "data": PNG, "media_type": "image/png"},
    }
    assert content[2] == {"type": "text", "text": "[Unsupported MCP content type: audio]"}


def test_structured_only_result_becomes_json_text() -> None:
    result = CallToolResult(content=[], structured_content={"alerts": []})
    assert result_content(result) == [{"type": "text", "text": '{"alerts": []}'}]
    assert result_text(result) == '{"alerts": []}'


def test_empty_result_says_so() -> None:
    assert result_content(CallToolResult(content=[])) == [{"type": "text", "text": EMPTY_RESULT}]


def test_tool_result_block_marks_errors() -> None:
    block = tool_result_block("toolu_1", text_result("bad state", is_error=True))
    assert block == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [{"type": "text", "text": "bad state"}],
        "is_error": True,
    }


def test_result_json_prefers_structured_content() -> None:
    both = CallToolResult(content=[TextContent(type="text", text="x")], structured_content={"n": 1})
    assert result_json(both) == {"n": 1}
    assert result_json(text_result("x")) == [{"type": "text", "text": "x"}]


def test_one_line_collapses_and_cuts() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    assert one_line("x" * 10, limit=5) == "xxxx…"


def test_show_tools_shows_each_whole_description() -> None:
    out = Transcript()
    forecast = Tool(
        name="get_forecast",
        input_schema={
            "type": "object",
            "properties": {
                "latitude": {"type": "number", "minimum": -90, "maximum": 90,
                             "description": "degrees north"},
                "units": {"enum": ["si", "us"], "default": "us"},
                "days": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
            },
            "required": ["latitude"],
        },
    )  # fmt: skip
    show_tools(out.write, [ALERTS, forecast, Tool(name="ping", input_schema={"type": "object"})])
    assert out.text == (
        "  get_alerts(state)\n"
        "      Active weather alerts for a US state.\n"
        "      Two-letter code.\n"
        "      - state (string)\n"
        "  get_forecast(latitude, [units], [days])\n"
        "      - latitude (number, -90 to 90: degrees north)\n"
        '      - units (any, optional, one of "si", "us", default "us")\n'
        "      - days (integer or null, optional)\n"
        "  ping()\n"
    )


def test_show_result_is_the_text_for_people() -> None:
    out = Transcript()
    image = ImageContent(type="image", data="aGk=", mime_type="image/png")
    show_result(
        out.write, "t", CallToolResult(content=[TextContent(type="text", text="a\x1b[2J"), image])
    )
    show_result(out.write, "t", CallToolResult(content=[], is_error=True))
    assert out.text == (
        "a\\u001b[2J\n[image image/png]\nt reported an error:\n(the tool returned no content)\n"
    )


def test_show_tools_when_there_are_none() -> None:
    out = Transcript()
    show_tools(out.write, [])
    assert out.text == "The server offers no tools.\n"


def test_show_result_json_is_indented_json() -> None:
    out = Transcript()
    show_result_json(out.write, CallToolResult(content=[], structured_content={"t": "18°C"}))
    assert out.text == '{\n  "t": "18°C"\n}\n'
