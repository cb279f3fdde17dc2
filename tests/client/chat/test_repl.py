"""The prompt loop as transcripts: scripted input lines, the whole output asserted."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, Tool

from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.chat.claude import ClaudeChat
from secure_mcp.client.chat.repl import (
    CLAUDE_OFF,
    HELP,
    Commands,
    UsageError,
    parse_call,
    run_chat,
    sigint_cancels,
)
from secure_mcp.client.settings import ClientSettings
from tests.support.anthropic_standin import AnthropicStandIn, Reply, say, use_tools
from tests.support.chat_session import FakeSession, Transcript, text_result


@contextlib.contextmanager
def no_interrupts(task: asyncio.Task[Any]) -> Iterator[None]:
    yield


async def transcript(
    session: FakeSession, chat: ClaudeChat | None, out: Transcript, interrupts: Any = no_interrupts
) -> str:
    await run_chat(
        out.read_line, Commands(session, chat, out.write), out.write, interrupts=interrupts
    )
    return out.text


def chat_for(
    standin: AnthropicStandIn, session: FakeSession, out: Transcript, tmp: Path
) -> ClaudeChat:
    settings = ClientSettings(state_dir=tmp, anthropic_api_key="k")
    return ClaudeChat(standin.client(), session, settings, out.write)


async def test_without_claude_tools_and_call_still_work() -> None:
    session = FakeSession(
        outcomes={"get_alerts": CallToolResult(content=[], structured_content={"alerts": 0})}
    )
    out = Transcript(
        "/tools", '/call get_alerts {"state": "CA"}', "alerts in CA?", "/quit", "never read"
    )
    assert await transcript(session, None, out) == (
        "> /tools\n"
        "  get_alerts(state)\n"
        "      Active weather alerts for a US state.\n"
        "      Two-letter code.\n"
        "      - state (string)\n"
        "  get_forecast(latitude, longitude)\n"
        "      Forecast for a latitude and longitude.\n"
        "      - latitude (number)\n"
        "      - longitude (number)\n"
        '> /call get_alerts {"state": "CA"}\n'
        '{\n  "alerts": 0\n}\n'  # no text: the structured content, readable
        "> alerts in CA?\n" + CLAUDE_OFF + "> /quit\n"
    )
    assert session.calls == [("get_alerts", {"state": "CA"})]
    assert session.events == ["list_tools"]  # /call used the list /tools made


async def test_questions_go_to_claude_and_clear_forgets(tmp_path: Path) -> None:
    standin = AnthropicStandIn()
    standin.queue(use_tools(("get_alerts", {"state": "CA"})), say("None."), say("Hello again."))
    session = FakeSession()
    out = Transcript("alerts in CA", "/clear", "hi", "")
    text = await transcript(session, chat_for(standin, session, out, tmp_path), out)
    assert text == (
        "> alerts in CA\n"
        '  ⚙ get_alerts {"state": "CA"}\n'
        "  ↳ get_alerts result for {'state': 'CA'}\n"
        "None.\n"
        "> /clear\n"
        "Conversation cleared.\n"
        "> hi\n"
        "Hello again.\n"
        "> \n"
        "\n"  # Ctrl-D (end of input) ends the session on a fresh line
    )
    assert standin.requests[2].body["messages"] == [{"role": "user", "content": "hi"}]


async def test_help_login_logout_and_unknown_commands() -> None:
    session = FakeSession()
    out = Transcript("/help", "/login", "/logout", "/clear", "/nope", "/exit")
    assert await transcript(session, None, out) == (
        "> /help\n" + HELP + "> /login\nSigned in.\n"
        "> /logout\nTool calls will ask you to sign in again (/login).\n"
        "> /clear\nConversation cleared.\n"
        "> /nope\nunknown command /nope: /help lists the commands\n"
        "> /exit\n"
    )
    assert session.events == ["login", "logout"]


async def test_call_errors_are_shown_and_the_session_goes_on() -> None:
    session = FakeSession(
        outcomes={
            "get_alerts": text_result("Unknown state", is_error=True),
            "get_forecast": MCPError(-32602, "Invalid params"),
            "boom": ClientConnectError("Sign-in failed: access_denied"),
            "net": httpx2.ConnectError("refused"),
        }
    )
    session.tools = [
        *session.tools,
        Tool(name="boom", input_schema={}),
        Tool(name="net", input_schema={}),
    ]
    out = Transcript(
        '/call get_alerts {"state": "XX"}',
        '/call get_forecast {"latitude": 1, "longitude": 2}',
        "/call boom",
        "/call net",
        "/call",
        "/call get_alerts {nope",
        "/call get_alerts [1]",
        "/call get_forecast {}",
        '/call get_forecast {"latitude": "north", "longitude": 2}',
        "/call get_weather {}",
    )
    assert await transcript(session, None, out) == (
        '> /call get_alerts {"state": "XX"}\nget_alerts reported an error:\nUnknown state\n'
        '> /call get_forecast {"latitude": 1, "longitude": 2}\nError: Invalid params\n'
        "> /call boom\nError: Sign-in failed: access_denied\n"
        "> /call net\nError: refused\n"
        '> /call\nusage: /call TOOL {"argument": "value"}\n'
        "> /call get_alerts {nope\n"
        "the arguments are not valid JSON: Expecting property name enclosed in double quotes "
        "(column 2)\n"
        '> /call get_alerts [1]\nthe arguments must be a JSON object, e.g. {"state": "CA"}\n'
        "> /call get_forecast {}\nget_forecast needs the argument latitude (number)\n"
        '> /call get_forecast {"latitude": "north", "longitude": 2}\n'
        'get_forecast: the argument latitude must be a number, not "north"\n'
        "> /call get_weather {}\nno tool named get_weather here; the server's tools: "
        "get_alerts, get_forecast, boom, net (/tools shows their arguments)\n"
        "\n"
    )
    assert [name for name, _ in session.calls] == ["get_alerts", "get_forecast", "boom", "net"]


async def test_claude_errors_are_one_line_and_the_session_survives(tmp_path: Path) -> None:
    standin = AnthropicStandIn()
    session = FakeSession()
    out = Transcript("first", "second")
    chat = chat_for(standin, session, out, tmp_path)
    standin.queue(Reply(status=529, error={"type": "error", "error": {"type": "overloaded_error"}}))
    standin.queue(say("Back."))
    assert await transcript(session, chat, out) == (
        "> first\nError: Claude is overloaded right now (529): try again in a moment.\n"
        "> second\nBack.\n\n"
    )


async def test_ctrl_c_cancels_the_answer_not_the_session() -> None:
    started = asyncio.Event()

    class Stalling(FakeSession):
        async def call_tool(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
            started.set()
            await asyncio.Event().wait()
            raise AssertionError("not reached")

    @contextlib.contextmanager
    def cancel_when_started(task: asyncio.Task[Any]) -> Iterator[None]:
        async def press_ctrl_c() -> None:
            await started.wait()
            task.cancel()

        helper = asyncio.ensure_future(press_ctrl_c())
        yield
        helper.cancel()

    out = Transcript('/call get_alerts {"state": "CA"}', "/tools")
    text = await transcript(Stalling(), None, out, interrupts=cancel_when_started)
    assert text.startswith(
        '> /call get_alerts {"state": "CA"}\n\n(cancelled)\n> /tools\n  get_alerts(state)'
    )


async def test_ctrl_c_at_the_prompt_just_prompts_again() -> None:
    out = Transcript(KeyboardInterrupt(), "/quit")
    assert await transcript(FakeSession(), None, out) == "> /quit\n"


async def test_cancelling_the_session_itself_propagates() -> None:
    class Forever(FakeSession):
        async def list_tools(self) -> list[Any]:
            await asyncio.Event().wait()
            return []

    out = Transcript("/tools")
    task = asyncio.ensure_future(transcript(Forever(), None, out))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_sigint_cancels_the_task_then_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGINT)
    task = asyncio.ensure_future(asyncio.Event().wait())
    with sigint_cancels(task):
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(asyncio.CancelledError):
            await task
    assert signal.getsignal(signal.SIGINT) is before


async def test_sigint_cancels_is_a_no_op_off_the_main_thread() -> None:
    def in_thread() -> bool:
        async def body() -> bool:
            task = asyncio.ensure_future(asyncio.sleep(0))
            with sigint_cancels(task):
                pass
            await task
            return True

        return asyncio.run(body())

    assert await asyncio.to_thread(in_thread)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param('get_alerts {"state": "CA"}', ("get_alerts", {"state": "CA"}), id="object"),
        pytest.param("get_alerts", ("get_alerts", {}), id="no-arguments"),
        pytest.param("  get_alerts   {}  ", ("get_alerts", {}), id="spaces"),
    ],
)
def test_parse_call(text: str, expected: tuple[str, dict[str, Any]]) -> None:
    assert parse_call(text) == expected


@pytest.mark.parametrize("text", ["", "t {", "t 3", 't "s"'])
def test_parse_call_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_call(text)


async def test_claude_is_set_up_at_the_first_question_keeping_the_settings_made_before() -> None:
    from secure_mcp.client.chat.lazy import LazyChat

    class Chat:
        confirm_tools = False

        def __init__(self) -> None:
            self.asked: list[str] = []
            self.cleared = 0

        async def ask(self, question: str) -> None:
            self.asked.append(question)

        def clear(self) -> None:
            self.cleared += 1

    made: list[Chat] = []

    async def start() -> Chat:
        made.append(Chat())
        return made[-1]

    lazy = LazyChat(start, confirm_tools=False)
    lazy.clear()  # nothing yet: nothing to clear, nothing started
    lazy.confirm_tools = True
    assert made == []
    await lazy.ask("first")
    await lazy.ask("second")
    [chat] = made
    assert chat.asked == ["first", "second"]
    assert chat.confirm_tools  # /confirm on before the first question still holds
    lazy.confirm_tools = False
    assert not chat.confirm_tools
    assert not lazy.confirm_tools
    lazy.clear()
    assert chat.cleared == 1
