"""Tool results as the terminal prints them (`/call`, `--call`, the `↳` line): no Claude SDK."""

from __future__ import annotations

import json
from typing import Any

from mcp.types import CallToolResult


def result_json(result: CallToolResult) -> Any:
    """What `--call` prints: the structured content when present, else the content blocks."""
    if result.structured_content is not None:
        return result.structured_content
    return [
        block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in result.content
    ]


def result_text(result: CallToolResult) -> str:
    """The result's text blocks joined, or its JSON when it has none (for short previews)."""
    texts = [block.text for block in result.content if block.type == "text"]
    if texts:
        return "\n".join(texts)
    return json.dumps(result_json(result))
