"""client.py --query as a real process: oauth.py, weather.py (NWS replayed) and Claude's stand-in.

The first run signs in (the URL it prints is completed on the real login and consent pages,
then the redirect goes to the client's loopback listener); later runs use the stored tokens.
Claude is the Messages API stand-in on a loopback port, reached through ANTHROPIC_BASE_URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.support.anthropic_standin import (
    AnthropicStandIn,
    RecordedRequest,
    Reply,
    say,
    standin_env,
    use_tools,
)
from tests.support.client_process import ClientRun, client_env, run_client
from tests.support.flows import Stack
from tests.support.headless import authorize_headlessly
from tests.support.processes import ROOT

pytestmark = pytest.mark.process

SF = {"latitude": 37.7749, "longitude": -122.4194}


@pytest.fixture
def stack(live_stack: Stack) -> Stack:
    """The run's shared oauth.py + weather.py."""
    return live_stack


def quoting_answer(prefix: str) -> Callable[[RecordedRequest], Reply]:
    """A reply quoting the start of the tool result Claude was sent (proves real data arrived)."""

    def reply(request: RecordedRequest) -> Reply:
        return say(f"{prefix} {flat_text(request.tool_results()[0])}")

    return reply


def flat_text(tool_result: dict[str, Any], limit: int = 60) -> str:
    """A tool result's text on one line, cut to `limit` characters."""
    text = " ".join(block["text"] for block in tool_result["content"])
    return " ".join(text.split())[:limit]


async def run_chat(
    stack: Stack, claude: AnthropicStandIn, state_dir: Path, *args: str
) -> ClientRun:
    """Run client.py to the end (--no-browser: it prints the URL; the test signs in)."""
    return await run_client(
        stack.weather.url, state_dir, *args, oauth=stack.oauth, env=standin_env(claude)
    )


async def test_query_alerts_then_forecast_through_the_real_servers(
    stack: Stack, claude: AnthropicStandIn, tmp_path: Path
) -> None:
    state_dir = tmp_path / "client-state"
    claude.queue(
        use_tools(("get_alerts", {"state": "CA"}), text="Let me look up the alerts."),
        quoting_answer("The weather service says:"),
    )
    first = await run_chat(stack, claude, state_dir, "--query", "alerts in CA")
    assert first.code == 0, first.err
    assert first.signed_in
    assert "Let me look up the alerts.\n" in first.out
    assert '  ⚙ get_alerts {"state": "CA"}\n' in first.out
    alerts_result = claude.requests[-1].tool_results()
    assert len(alerts_result) == 1
    assert alerts_result[0]["is_error"] is False
    # The answer quotes the real tool result: the data made the whole round trip.
    assert f"The weather service says: {flat_text(alerts_result[0])}\n" in first.out

    claude.queue(use_tools(("get_forecast", SF)), quoting_answer("Forecast:"))
    question = "weather forecast for latitude 37.7749 longitude -122.4194"
    second = await run_chat(stack, claude, state_dir, "--query", question)
    assert second.code == 0, second.err
    assert not second.signed_in  # stored tokens: no authorization this time
    assert "/authorize?" not in second.err
    assert '  ⚙ get_forecast {"latitude": 37.7749, "longitude": -122.4194}\n' in second.out
    forecast_result = claude.requests[-1].tool_results()[0]
    assert forecast_result["is_error"] is False
    assert f"Forecast: {flat_text(forecast_result)}\n" in second.out
    assert claude.requests[-2].body["messages"] == [{"role": "user", "content": question}]


async def test_call_prints_tool_json(
    stack: Stack, claude: AnthropicStandIn, tmp_path: Path
) -> None:
    run = await run_chat(
        stack, claude, tmp_path / "state", "--call", "get_alerts", '{"state": "CA"}'
    )
    assert run.code == 0, run.err
    assert run.signed_in
    assert run.out.lstrip().startswith(("{", "["))


class Terminal:
    """client.py on a pseudo-terminal: what a person at the keyboard sees and types."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env={**env, "TERM": "xterm"}, stdin=slave, stdout=slave,
            stderr=slave, start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        self.seen = b""

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait_for(self, pattern: str, timeout: float = 30.0) -> str:
        """Read until `pattern` (a regex over the text without terminal escapes) appears."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                with contextlib.suppress(OSError):
                    self.seen += os.read(self.master, 65536)
            match = re.search(pattern, self.screen)
            if match:
                self.seen = self.seen[-200:]  # later waits look at newer output only
                return match.group(0)
        raise AssertionError(f"{pattern!r} not seen in:\n{self.screen}")

    @property
    def screen(self) -> str:
        return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", self.seen.decode(errors="replace"))

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        os.close(self.master)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll `condition` (from a worker thread) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


async def test_interactive_prompt_in_a_terminal(
    stack: Stack, claude: AnthropicStandIn, tmp_path: Path
) -> None:
    claude.queue(use_tools(("get_alerts", {"state": "CA"})), say("No alerts in CA."))
    claude.queue(Reply(stall=asyncio.Event()))  # the answer that never comes
    env = client_env(stack.weather.url, tmp_path / "state", **standin_env(claude))
    terminal = Terminal([sys.executable, str(ROOT / "client.py"), "--no-browser"], env)
    try:
        url = await asyncio.to_thread(terminal.wait_for, rf"{stack.oauth.issuer}/authorize\?\S+")
        async with httpx2.AsyncClient(timeout=10) as browser:
            location = await authorize_headlessly(
                browser, url, username=stack.oauth.username, password=stack.oauth.password
            )
            await browser.get(location)
        await asyncio.to_thread(terminal.wait_for, r"lists commands\.\s*>")
        terminal.type("alerts in CA\r")
        await asyncio.to_thread(terminal.wait_for, r"↳ .*\s+No alerts in CA\.\s*>")
        asked = len(claude.requests)
        terminal.type("and tomorrow?\r")
        await asyncio.to_thread(wait_until, lambda: len(claude.requests) > asked)
        terminal.process.send_signal(signal.SIGINT)  # Ctrl-C while Claude is answering
        await asyncio.to_thread(terminal.wait_for, r"\(cancelled\)\s*>")
        terminal.type('/call get_alerts {"state": "CA"}\r')
        await asyncio.to_thread(terminal.wait_for, r'"state": "CA"[\s\S]*\}\s*>')
        terminal.type("\x04")  # Ctrl-D
        assert await asyncio.to_thread(terminal.process.wait, 30) == 0
    finally:
        terminal.close()
