"""Nothing is sent that the user cannot see: every call whole, and a mode that asks first."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.anthropic_standin import say, use_tools
from tests.support.chat_session import Transcript
from tests.support.hostile_world import World

LONG = {"note": "x" * 3000 + " the end", "list": list(range(200)), "nested": {"deep": "y" * 500}}


def _shown_call(out: str, name: str) -> object:
    """The arguments the tool-call line shows, put back together from its wrapped lines."""
    match = re.search(rf"  ⚙ {name}(?: (.*)\n|\n((?:      .*\n)+))", out)
    assert match is not None, out
    text = match.group(1) or "".join(
        line.removeprefix("      ") for line in match.group(2).splitlines()
    )
    return json.loads(text)


def test_long_arguments_are_shown_whole_and_wrapped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = World(tmp_path / "state")
    world.claude.queue(use_tools(("get_alerts", LONG)), say("done"))
    assert world.run("--query", "go") == 0
    out, _ = capsys.readouterr()
    assert _shown_call(out, "get_alerts") == LONG
    assert "…" not in out.split("  ↳")[0]  # nothing cut
    assert max(len(line) for line in out.splitlines()) <= 100  # wrapped


def test_short_arguments_stay_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = World(tmp_path / "state")
    world.claude.queue(use_tools(("get_alerts", {"state": "CA"})), say("done"))
    assert world.run("--query", "go") == 0
    assert '  ⚙ get_alerts {"state": "CA"}\n' in capsys.readouterr().out


def test_confirm_tools_asks_and_a_no_goes_back_to_claude_as_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = World(tmp_path / "state")
    world.claude.queue(
        use_tools(("get_alerts", {"state": "CA"}), ("get_alerts", {"state": "TX"})),
        say("You declined one."),
    )
    answers = Transcript("n", "y")
    assert world.run("--confirm-tools", "--query", "go", out=answers) == 0
    assert world.mcp.calls == [("get_alerts", {"state": "TX"})]  # CA was never sent
    results = world.claude.requests[1].tool_results()
    assert results[0]["is_error"] is True
    assert "declined" in results[0]["content"][0]["text"]
    assert results[1]["is_error"] is False
    out = capsys.readouterr().out
    assert out.index('⚙ get_alerts {"state": "CA"}') < out.index("↳ error: not run: the user")
    assert answers.text.count("Run this tool call? [y/N] ") == 2


def test_confirm_on_and_off_at_the_prompt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = World(tmp_path / "state")
    world.claude.queue(
        use_tools(("get_alerts", {"state": "CA"})),
        say("declined"),
        use_tools(("get_alerts", {"state": "NY"})),
        say("ran"),
    )
    lines = ("/confirm", "/confirm on", "first", "", "/confirm off", "second")
    assert world.run(lines=lines) == 0  # the empty answer is a no
    out = capsys.readouterr().out
    assert "usage: /confirm on|off (now off)" in out
    assert "Claude's tool calls will wait for your yes." in out
    assert "Claude's tool calls run without asking" in out
    assert world.mcp.calls == [("get_alerts", {"state": "NY"})]


def test_end_of_input_at_the_question_is_a_no(tmp_path: Path) -> None:
    world = World(tmp_path / "state")
    world.claude.queue(use_tools(("get_alerts", {"state": "CA"})), say("ok"))
    assert world.run("--confirm-tools", "--query", "go", out=Transcript()) == 0
    assert world.mcp.calls == []


def test_confirm_needs_claude(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = World(tmp_path / "state")
    assert world.run(lines=("/confirm on",), env={}) == 0
    assert capsys.readouterr().out.count("Claude is off") == 2
