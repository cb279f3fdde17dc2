"""The interactive loop: questions go to Claude, slash commands to the MCP session."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

import httpx2
from mcp.shared.exceptions import MCPError
from mcp.types import Tool

from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.chat.calls import UsageError, check_call, find_tool, parse_call
from secure_mcp.client.chat.errors import ClaudeError
from secure_mcp.client.chat.render import Write, show_result, show_tools
from secure_mcp.client.session import ToolSession
from secure_mcp.client.terminal import clean_line

PROMPT = "> "
HELP = """\
Commands:
  /tools              list the server's tools and their arguments
  /call TOOL [JSON]   call a tool yourself, e.g. /call get_alerts {"state": "CA"}
  /login              sign in again
  /logout             revoke and forget the stored tokens
  /confirm on|off     ask before each tool call Claude makes (or stop asking)
  /clear              forget the conversation with Claude
  /help               this list
  /quit               leave (Ctrl-D works too)
Anything else is a question for Claude. Ctrl-C stops the current answer.
"""
CLAUDE_OFF = (
    "Claude is off: set ANTHROPIC_API_KEY in .env (see .env.example) and restart to chat.\n"
    "Meanwhile /tools and /call work.\n"
)

ReadLine = Callable[[str], Awaitable[str]]
"""Reads one line; raises EOFError at the end (Ctrl-D) and KeyboardInterrupt on Ctrl-C."""
Answer = Callable[[str], Awaitable[bool]]
"""Handles one line; returns False to end the session."""
Interrupts = Callable[["asyncio.Task[Any]"], AbstractContextManager[None]]
"""While active, routes Ctrl-C to cancelling the given task."""

# Expected failures of one command or question: shown in one line, the session goes on.
EXPECTED_ERRORS = (ClaudeError, ClientConnectError, MCPError, httpx2.HTTPError)


__all__ = [
    "CLAUDE_OFF",
    "EXPECTED_ERRORS",
    "HELP",
    "Chat",
    "Commands",
    "ReadLine",
    "UsageError",
    "parse_call",
    "run_chat",
]


class Chat(Protocol):
    """The conversation with Claude, as the commands see it (`ClaudeChat`, or its lazy stand-in)."""

    confirm_tools: bool

    async def ask(self, question: str) -> None:
        """Answer one question, calling tools as needed."""
        ...

    def clear(self) -> None:
        """Forget the conversation."""
        ...


class Commands:
    """Slash commands and questions for one session; Claude may be off (no API key)."""

    def __init__(self, session: ToolSession, chat: Chat | None, write: Write) -> None:
        self._session = session
        self._chat = chat
        self._write = write
        self._listed: list[Tool] | None = None  # listed once; again by /tools or a new name

    async def __call__(self, line: str) -> bool:
        """Handle one line; expected failures are shown in one line and the session goes on."""
        try:
            return await self._dispatch(line.strip())
        except UsageError as exc:
            self._write(f"{clean_line(str(exc))}\n")
        except EXPECTED_ERRORS as exc:
            if isinstance(exc, ClientConnectError) and exc.fatal:
                raise  # the session ends: cli.main says why in one line
            self._write(f"Error: {clean_line(str(exc))}\n")
        return True

    async def _dispatch(self, line: str) -> bool:
        if not line:
            return True
        if not line.startswith("/"):
            await self._ask(line)
            return True
        command, _, rest = line.partition(" ")
        if command in ("/quit", "/exit"):
            return False
        handler = self._handlers().get(command)
        if handler is None:
            raise UsageError(f"unknown command {command}: /help lists the commands")
        await handler(rest)
        return True

    def _handlers(self) -> dict[str, Callable[[str], Awaitable[None]]]:
        return {
            "/tools": self._tools,
            "/call": self._call,
            "/login": self._login,
            "/logout": self._logout,
            "/confirm": self._confirm,
            "/clear": self._clear,
            "/help": self._help,
        }

    async def _ask(self, question: str) -> None:
        if self._chat is None:
            self._write(CLAUDE_OFF)
            return
        await self._chat.ask(question)

    async def _tools(self, _: str) -> None:
        self._listed = await self._session.list_tools()
        show_tools(self._write, self._listed)

    async def _call(self, rest: str) -> None:
        name, arguments = parse_call(rest)
        if self._listed is None or find_tool(self._listed, name) is None:
            self._listed = await self._session.list_tools()  # the tool may be new
        check_call(self._listed, name, arguments)  # nothing is sent for a bad call
        show_result(self._write, name, await self._session.call_tool(name, arguments))

    async def _login(self, _: str) -> None:
        await self._session.login()
        self._write("Signed in.\n")

    async def _logout(self, _: str) -> None:
        await self._session.logout()
        self._write("Tool calls will ask you to sign in again (/login).\n")

    async def _confirm(self, rest: str) -> None:
        if self._chat is None:
            self._write(CLAUDE_OFF)
            return
        choice = rest.strip().lower()
        if choice not in ("on", "off"):
            state = "on" if self._chat.confirm_tools else "off"
            raise UsageError(f"usage: /confirm on|off (now {state})")
        self._chat.confirm_tools = choice == "on"
        if self._chat.confirm_tools:
            self._write("Claude's tool calls will wait for your yes.\n")
        else:
            self._write("Claude's tool calls run without asking (each is still shown).\n")

    async def _clear(self, _: str) -> None:
        if self._chat is not None:
            self._chat.clear()
        self._write("Conversation cleared.\n")

    async def _help(self, _: str) -> None:
        self._write(HELP)


@contextlib.contextmanager
def sigint_cancels(task: asyncio.Task[Any]) -> Iterator[None]:
    """While active, Ctrl-C (SIGINT) cancels `task` instead of ending the program."""
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, task.cancel)
    except (NotImplementedError, RuntimeError, ValueError):  # no signals here (thread, Windows)
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, previous)  # asyncio.run's own handler, for the prompt


async def run_chat(
    read_line: ReadLine,
    answer: Answer,
    write: Write,
    *,
    interrupts: Interrupts = sigint_cancels,
) -> None:
    """Read lines and answer them until /quit or Ctrl-D; Ctrl-C cancels only the current answer."""
    while True:
        try:
            line = await read_line(PROMPT)
        except EOFError:
            write("\n")
            return
        except KeyboardInterrupt:  # Ctrl-C at the prompt clears the line
            continue
        task = asyncio.ensure_future(answer(line))
        with interrupts(task):
            try:
                keep_going = await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the session itself is being cancelled
                write("\n(cancelled)\n")
                continue
        if not keep_going:
            return
