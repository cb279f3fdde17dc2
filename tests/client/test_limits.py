"""Bounds on what the client keeps of a tool result (secure_mcp/client/limits.py)."""

from __future__ import annotations

from mcp.types import CallToolResult, ImageContent, TextContent

from secure_mcp.client.limits import truncate_result


def test_truncation_keeps_other_blocks_and_drops_text_past_the_budget() -> None:
    image = ImageContent(type="image", data="aGk=", mime_type="image/png")
    result = CallToolResult(
        content=[
            TextContent(type="text", text="a" * 6),
            image,
            TextContent(type="text", text="b" * 6),
            TextContent(type="text", text="c" * 6),
        ],
        structured_content={"big": "x" * 50},
    )
    trimmed, note = truncate_result(result, 8)
    assert [getattr(block, "text", "image") for block in trimmed.content] == [
        "aaaaaa",
        "image",
        "bb",
        "[truncated by the client: the result has 61 characters; the first 8 are kept]",
    ]
    assert trimmed.structured_content is None
    assert note is not None
    same, none = truncate_result(result, 1000)
    assert (same, none) == (result, None)
