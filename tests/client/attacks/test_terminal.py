"""The terminal belongs to the user: no server, authorization server or model text controls it.

Every path that shows outside text is driven through cli.main as a user runs it (chat, /tools,
/call, --call, --query, --verbose, error lines) with every known terminal attack in the text,
and the whole stdout and stderr must be inert. The screen itself is checked in tmux by
test_real_terminal.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.anthropic_standin import api_error, say, use_tools
from tests.support.chat_session import Transcript
from tests.support.hostile import (
    ALL_ATTACKS,
    ESC,
    HostileAuthServer,
    HostileMcp,
    rpc,
    text_result,
    tool,
)
from tests.support.hostile_world import World, assert_inert

ESCAPED_ESC = "\\u001b"


def _world(tmp_path: Path) -> World:
    world = World(tmp_path / "state")
    world.mcp.tools = [tool("get_alerts", "Alerts for a state.\nSecond line." + ALL_ATTACKS)]
    world.mcp.handlers["tools/call"] = lambda i, params: rpc(i, text_result("ok" + ALL_ATTACKS))
    return world


def test_chat_tools_and_call_show_no_control_character(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _world(tmp_path)
    arguments = {"state": "CA" + ALL_ATTACKS}
    world.claude.queue(
        use_tools(("get_alerts", arguments), text="Checking." + ALL_ATTACKS),
        say("No alerts." + ALL_ATTACKS),
    )
    assert world.run(lines=("/tools", "alerts in CA?", '/call get_alerts {"state": "CA"}')) == 0
    out, err = capsys.readouterr()
    assert_inert(out)
    assert_inert(err)
    assert "  get_alerts([state])\n      Alerts for a state.\n      Second line." in out  # /tools
    assert out.count(ESCAPED_ESC) > 30  # the attacks are shown, as text
    call = re.search(r"  ⚙ get_alerts\n((?:      .*\n)+)", out)
    assert call is not None  # the tool-call line, intact, with every argument
    shown = "".join(line.removeprefix("      ") for line in call.group(1).splitlines())
    assert json.loads(shown) == arguments
    assert world.mcp.calls == [("get_alerts", arguments), ("get_alerts", {"state": "CA"})]


def test_query_mode_shows_no_control_character(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _world(tmp_path)
    world.claude.queue(use_tools(("get_alerts", {"state": "CA"})), say("done" + ALL_ATTACKS))
    assert world.run("--query", "alerts?") == 0
    out, err = capsys.readouterr()
    assert_inert(out + err)
    assert out.endswith("\\u0007\\u0000a\\u2028b\n")  # the answer, to its last character


def test_call_mode_prints_inert_json_with_the_same_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _world(tmp_path)
    assert world.run("--call", "get_alerts", '{"state": "CA"}') == 0
    out, _ = capsys.readouterr()
    assert_inert(out)
    assert json.loads(out) == [{"type": "text", "text": "ok" + ALL_ATTACKS}]


def _signing_in(tmp_path: Path, fake_as: HostileAuthServer) -> World:
    world = World(tmp_path / "state", fake_as=fake_as)
    world.mcp = HostileMcp(auth=fake_as)
    world.router.transports["http://127.0.0.1:8000"] = world.mcp  # type: ignore[assignment]
    return world


def test_verbose_trace_shows_no_control_character(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _signing_in(tmp_path, HostileAuthServer(client_id_text=ALL_ATTACKS))
    assert world.run("--verbose", "--call", "get_alerts", '{"state": "CA"}') == 0
    _, err = capsys.readouterr()
    assert_inert(err)
    assert "[oauth] registration: client_id client-" in err
    assert ESCAPED_ESC in err


@pytest.mark.parametrize(
    ("fake_as", "expected"),
    [
        (
            HostileAuthServer(token_error={"error": "invalid_grant" + ALL_ATTACKS}),
            "Error: Sign-in failed: Token exchange failed (400): ",
        ),
        (
            HostileAuthServer(refuse="access_denied", error_description=ALL_ATTACKS),
            "Error: The authorization server refused: access_denied (",
        ),
        (
            HostileAuthServer(iss_override="http://127.0.0.1:9000" + ALL_ATTACKS),
            "Error: Sign-in failed: Authorization response iss mismatch: ",
        ),
    ],
    ids=["token-error", "authorization-error", "iss"],
)
def test_error_lines_are_one_inert_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake_as: HostileAuthServer,
    expected: str,
) -> None:
    world = _signing_in(tmp_path, fake_as)
    assert world.run("--call", "get_alerts", "{}") == 1
    _, err = capsys.readouterr()
    last = err.splitlines()[-1]
    assert last.startswith(expected)
    assert ESCAPED_ESC in last
    assert_inert(err)
    assert "Traceback" not in err


def test_tool_errors_and_usage_lines_are_inert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _world(tmp_path)
    world.mcp.handlers["tools/call"] = lambda i, params: rpc(
        i, error={"code": -32000, "message": "boom" + ALL_ATTACKS}
    )
    out = Transcript('/call get_alerts {"state": "CA"}', "/nosuch" + ALL_ATTACKS)
    assert world.run(out=out, env={}) == 0
    shown, err = capsys.readouterr()
    assert_inert(shown + err)
    assert "get_alerts reported an error:\nboom\\u001b]52" in shown  # quoted, made visible
    assert "unknown command /nosuch" + ESCAPED_ESC in shown


def test_a_hostile_tool_name_and_api_error_stay_inert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _world(tmp_path)
    world.claude.queue(
        use_tools(("get_alerts" + ALL_ATTACKS, {"state": "CA"})),
        api_error(400, "invalid_request_error", "bad request" + ALL_ATTACKS),
    )
    assert world.run("--query", "alerts?") == 1
    out, err = capsys.readouterr()
    assert_inert(out + err)
    assert "  ⚙ get_alerts\\u001b]52;c;" in out
    assert err.splitlines()[-1].startswith("Error: Claude refused the request (400): bad request")


def test_tool_arguments_shown_by_tools_are_inert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`/tools` now shows each argument: names, types, bounds and descriptions are server text."""
    world = World(tmp_path / "state")
    hostile = {"type": "string", "description": "d" + ALL_ATTACKS, "default": ALL_ATTACKS}
    schema = {
        "type": "object",
        "properties": {"state" + ALL_ATTACKS: hostile, "n": {"type": "number", "maximum": 1}},
        "required": ["state" + ALL_ATTACKS],
    }
    odd = {"type": "object", "properties": {"x": {"type": "t" + ALL_ATTACKS, "enum": [ESC]}}}
    world.mcp.tools = [tool("get_alerts", "Alerts.", schema), tool("odd", "Odd.", odd)]
    assert world.run(lines=("/tools", '/call get_alerts {"n": 5}'), env={}) == 0
    out, err = capsys.readouterr()
    assert_inert(out + err)
    assert "      - state\\u001b]52;c;" in out
    assert "      - x (t\\u001b]52;c;" in out
    assert "get_alerts needs the argument state\\u001b]52;c;" in out
    assert world.mcp.calls == []  # nothing was sent for the bad call
