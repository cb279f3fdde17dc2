"""Where input lines come from: the terminal prompt (with history) and plain stdin."""

from __future__ import annotations

import asyncio
import io
import os
import stat
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from secure_mcp.client.chat import prompt
from secure_mcp.client.chat.prompt import (
    PrivateFileHistory,
    default_reader,
    history_path,
    stream_reader,
    terminal_reader,
)
from secure_mcp.client.chat.repl import ReadLine


async def test_terminal_reader_edits_and_keeps_private_history(tmp_path: Path) -> None:
    history = history_path(tmp_path / "state")
    with create_pipe_input() as pipe:
        read = terminal_reader(history, term_input=pipe, term_output=DummyOutput())
        pipe.send_text("alerts in TX\x7f\x7fCA\r")  # backspace edits the line
        assert await read("> ") == "alerts in CA"
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    assert "+alerts in CA" in history.read_text()


@pytest.mark.parametrize(
    ("key", "error"),
    [
        pytest.param("\x04", EOFError, id="ctrl-d"),
        pytest.param("\x03", KeyboardInterrupt, id="ctrl-c"),
    ],
)
async def test_terminal_reader_control_keys(
    tmp_path: Path, key: str, error: type[BaseException]
) -> None:
    with create_pipe_input() as pipe:
        read = terminal_reader(tmp_path / "h", term_input=pipe, term_output=DummyOutput())
        pipe.send_text(key)
        with pytest.raises(error):
            await read("> ")


async def test_stream_reader_reads_lines_until_the_end() -> None:
    read = stream_reader(io.StringIO("/tools\r\nhello\n"))
    assert [await read("> "), await read("> ")] == ["/tools", "hello"]
    with pytest.raises(EOFError):
        await read("> ")


async def test_default_reader_uses_stdin_when_it_is_not_a_terminal(tmp_path: Path) -> None:
    read = default_reader(tmp_path, io.StringIO("x\n"))
    assert await read("> ") == "x"


def test_default_reader_prompts_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    seen: list[Path] = []

    def fake_terminal_reader(path: Path, **kwargs: object) -> ReadLine:
        seen.append(path)
        return stream_reader(Tty())

    monkeypatch.setattr(prompt, "terminal_reader", fake_terminal_reader)
    default_reader(tmp_path, Tty())
    assert seen == [tmp_path / "prompt-history"]


async def test_cancelled_read_does_not_wait_for_the_line() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd) as pipe:
        task = asyncio.ensure_future(stream_reader(pipe)("> "))
        await asyncio.sleep(0.05)
        task.cancel()  # Ctrl-C while nothing was typed
        with pytest.raises(asyncio.CancelledError):
            await task
        os.write(write_fd, b"late\n")  # the thread finishes; its line goes nowhere
        os.close(write_fd)
        await asyncio.sleep(0.05)


def test_history_is_read_back_newest_first(tmp_path: Path) -> None:
    history = history_path(tmp_path)
    history.write_text("\n# 2026-01-01\n+first\n\n# 2026-01-02\n+two\n+lines\n")
    history.chmod(0o600)
    stored = PrivateFileHistory(history)
    assert list(stored.load_history_strings()) == ["two\nlines", "first"]
    stored.store_string("third")
    assert list(stored.load_history_strings()) == ["third", "two\nlines", "first"]
