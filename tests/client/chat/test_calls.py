"""`/call` and `--call` check the tool and its arguments before anything is sent."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.types import Tool

from secure_mcp.client.chat.calls import UsageError, check_call
from tests.support.chat_session import WEATHER_TOOLS

# The schemas weather.py really advertises (pydantic's, with descriptions and bounds).
ALERTS = Tool(
    name="get_alerts",
    input_schema={
        "type": "object",
        "properties": {
            "state": {
                "description": "two-letter US state or territory code, e.g. CA",
                "title": "State",
                "type": "string",
            }
        },
        "required": ["state"],
        "title": "get_alertsArguments",
    },
)
FORECAST = Tool(
    name="get_forecast",
    input_schema={
        "type": "object",
        "properties": {
            "latitude": {"description": "degrees north", "maximum": 90, "minimum": -90,
                         "type": "number"},
            "longitude": {"description": "degrees east", "maximum": 180, "minimum": -180,
                          "type": "number"},
        },
        "required": ["latitude", "longitude"],
    },
)  # fmt: skip
TOOLS = [ALERTS, FORECAST]


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        pytest.param(
            "get_forecast",
            {"longitude": 2},
            "get_forecast needs the argument latitude (number, -90 to 90: degrees north)",
            id="missing",
        ),
        pytest.param(
            "get_alerts",
            {},
            "get_alerts needs the argument state (string: two-letter US state or territory "
            "code, e.g. CA)",
            id="missing-string",
        ),
        pytest.param(
            "get_forecast",
            {"latitude": "37.7", "longitude": 2},
            'get_forecast: the argument latitude must be a number, not "37.7"',
            id="wrong-type",
        ),
        pytest.param(
            "get_forecast",
            {"latitude": 137.7, "longitude": 2},
            "get_forecast: the argument latitude must be at most 90, not 137.7",
            id="above-maximum",
        ),
        pytest.param(
            "get_forecast",
            {"latitude": 1, "longitude": -200},
            "get_forecast: the argument longitude must be at least -180, not -200",
            id="below-minimum",
        ),
        pytest.param(
            "get_alerts",
            {"stat": "CA"},
            "get_alerts needs the argument state (string: two-letter US state or territory "
            "code, e.g. CA)",
            id="typo-is-missing-first",
        ),
        pytest.param(
            "get_alerts",
            {"state": "CA", "country": "US"},
            "get_alerts has no argument country; its arguments: state",
            id="unknown-argument",
        ),
        pytest.param(
            "get_alert",
            {"state": "CA"},
            "no tool named get_alert here; the server's tools: get_alerts, get_forecast "
            "(/tools shows their arguments)",
            id="unknown-tool",
        ),
    ],
)
def test_bad_calls_are_one_clear_line(name: str, arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_call(TOOLS, name, arguments)
    assert str(caught.value) == message
    assert "http" not in str(caught.value)  # never a validation dump pointing at a web page


def test_good_calls_pass() -> None:
    check_call(TOOLS, "get_alerts", {"state": "CA"})
    check_call(TOOLS, "get_forecast", {"latitude": 37.7749, "longitude": -122.4194})
    check_call(WEATHER_TOOLS, "get_forecast", {"latitude": 1, "longitude": 2})


@pytest.mark.parametrize(
    "schema",
    [
        pytest.param({"type": "object", "additionalProperties": True}, id="open"),
        pytest.param({"type": "object", "properties": {"x": {"type": "nonsense"}}}, id="invalid"),
        pytest.param({"$ref": "https://elsewhere.example/schema.json"}, id="remote-ref"),
        pytest.param({"type": "object", "properties": {}, "patternProperties": {"^x": {}}},
                     id="patterns"),
    ],
)  # fmt: skip
def test_schemas_the_client_cannot_judge_leave_it_to_the_server(schema: dict[str, Any]) -> None:
    """An unusable schema is the server's business: the call goes out and it decides."""
    tool = Tool(name="odd", input_schema=schema)
    check_call([tool], "odd", {"x": 1, "anything": [1, 2]})


def test_the_server_tool_name_is_shown_inert() -> None:
    tool = Tool(name="evil\x1b[2J", input_schema={"type": "object", "required": ["a"]})
    with pytest.raises(UsageError) as caught:
        check_call([tool], "evil\x1b[2J", {})
    assert "\x1b" not in str(caught.value)


def test_argument_texts_say_types_lists_and_long_values() -> None:
    from secure_mcp.client.chat.calls import argument_text

    assert argument_text("n", {"type": ["integer", "null"], "minimum": 1}) == (
        "n (integer or null, at least 1)"
    )
    assert argument_text("s", {"type": "string", "default": "x" * 60}) == (
        f's (string, default "{"x" * 38}…)'
    )
    assert argument_text("f", {"maximum": 2.5}) == "f (any, at most 2.5)"
    assert argument_text("odd", "not a schema") == "odd (any)"
