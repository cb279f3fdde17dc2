"""Where input lines come from: a terminal prompt with editing and history, or plain stdin."""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output

from secure_mcp.client.chat.repl import ReadLine
from secure_mcp.client.threaded_input import read_in_thread
from secure_mcp.common.private_files import (
    check_private_dir,
    open_private,
)

HISTORY_FILE = "prompt-history"


def history_path(state_dir: Path) -> Path:
    """The prompt's history file, beside the tokens in the private state folder."""
    return state_dir / HISTORY_FILE


class PrivateFileHistory(FileHistory):
    """prompt_toolkit's history file, opened only as a private file: never through a link."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self._path = path

    def load_history_strings(self) -> Iterable[str]:
        """The stored lines, newest first (read through a checked descriptor)."""
        with os.fdopen(open_private(self._path, os.O_RDONLY), "rb") as handle:
            data = handle.read().decode("utf-8", errors="replace")
        strings, lines = [], []
        for line in data.splitlines(keepends=True):
            if line.startswith("+"):
                lines.append(line[1:])
            elif lines:
                strings.append("".join(lines)[:-1])
                lines = []
        if lines:
            strings.append("".join(lines)[:-1])
        return reversed(strings)

    def store_string(self, string: str) -> None:
        """Append one entry (O_APPEND on a checked descriptor)."""
        entry = f"\n# {datetime.datetime.now()}\n" + "".join(
            f"+{line}\n" for line in string.split("\n")
        )
        fd = open_private(self._path, os.O_WRONLY | os.O_APPEND)
        with os.fdopen(fd, "ab") as handle:
            handle.write(entry.encode("utf-8", errors="replace"))


def _touch_private(path: Path) -> None:
    """Create `path` with mode 0600 if missing (questions may be private), never via a link."""
    check_private_dir(path.parent)  # created 0700; ours alone, or refused
    os.close(open_private(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY))


def terminal_reader(
    history: Path,
    *,
    term_input: Input | None = None,
    term_output: Output | None = None,
) -> ReadLine:
    """A prompt with line editing and a history file; Ctrl-C and Ctrl-D raise as ReadLine says."""
    _touch_private(history)
    session: PromptSession[str] = PromptSession(
        history=PrivateFileHistory(history), input=term_input, output=term_output
    )

    async def read(prompt: str) -> str:
        return await session.prompt_async(prompt)

    return read


def stream_reader(stream: TextIO) -> ReadLine:
    """Lines from a pipe or file (no prompt shown); the end of the stream is EOFError."""

    async def read(prompt: str) -> str:
        line = await read_in_thread(stream.readline, "stdin-reader")
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
