"""Where input lines come from: a terminal prompt with editing and history, or plain stdin."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output

from secure_mcp.client.chat.repl import ReadLine
from secure_mcp.common.private_files import ensure_private_dir

HISTORY_FILE = "prompt-history"


def history_path(state_dir: Path) -> Path:
    """The prompt's history file, beside the tokens in the private state folder."""
    return state_dir / HISTORY_FILE


def _touch_private(path: Path) -> None:
    """Create `path` with mode 0600 if missing (questions may be private)."""
    ensure_private_dir(path.parent)
    os.close(os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600))


def terminal_reader(
    history: Path, *, term_input: Input | None = None, term_output: Output | None = None
) -> ReadLine:
    """A prompt with line editing and a history file; Ctrl-C and Ctrl-D raise as ReadLine says."""
    _touch_private(history)
    session: PromptSession[str] = PromptSession(
        history=FileHistory(str(history)), input=term_input, output=term_output
    )

    async def read(prompt: str) -> str:
        return await session.prompt_async(prompt)

    return read


def _readline_in_daemon_thread(stream: TextIO) -> asyncio.Future[str]:
    """`stream.readline()` in a daemon thread: Ctrl-C never waits for the line to arrive."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def deliver(line: str) -> None:
        if not future.done():
            future.set_result(line)

    def work() -> None:
        line = stream.readline()
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(deliver, line)

    threading.Thread(target=work, name="stdin-reader", daemon=True).start()
    return future


def stream_reader(stream: TextIO) -> ReadLine:
    """Lines from a pipe or file (no prompt shown); the end of the stream is EOFError."""

    async def read(prompt: str) -> str:
        line = await _readline_in_daemon_thread(stream)
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    return read


def default_reader(state_dir: Path, stdin: TextIO | None = None) -> ReadLine:
    """The terminal prompt when stdin is a terminal, else plain lines from stdin."""
    stream = stdin if stdin is not None else sys.stdin
    if stream.isatty():
        return terminal_reader(history_path(state_dir))
    return stream_reader(stream)
