"""`/call TOOL JSON` and `--call TOOL JSON`: parsed here, before anything is sent."""

from __future__ import annotations

import json
from typing import Any


class UsageError(Exception):
    """A command typed wrongly; `str(exc)` says how to type it."""


def parse_call(text: str) -> tuple[str, dict[str, Any]]:
    """`TOOL [JSON object]` as the tool name and its arguments (`/call` and `--call`)."""
    name, _, raw = text.strip().partition(" ")
    if not name:
        raise UsageError('usage: /call TOOL {"argument": "value"}')
    try:
        arguments = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"the arguments are not valid JSON: {exc.msg} (column {exc.colno})"
        ) from exc
    if not isinstance(arguments, dict):
        raise UsageError('the arguments must be a JSON object, e.g. {"state": "CA"}')
    return name, arguments
