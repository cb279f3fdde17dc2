"""The one threaded reader behind the chat prompt's stdin and `--paste`."""

from __future__ import annotations

import asyncio
import threading

import pytest

from secure_mcp.client.threaded_input import read_in_thread


async def test_the_value_read_is_returned_from_a_named_daemon_thread() -> None:
    seen: list[threading.Thread] = []

    def read() -> str:
        seen.append(threading.current_thread())
        return "line"

    assert await read_in_thread(read, "test-reader") == "line"
    assert (seen[0].name, seen[0].daemon) == ("test-reader", True)
    assert seen[0] is not threading.current_thread()


async def test_an_error_in_the_read_reaches_the_awaiting_task() -> None:
    def read() -> str:
        raise OSError("stdin closed")

    with pytest.raises(OSError, match="stdin closed"):
        await read_in_thread(read, "test-reader")


async def test_a_cancelled_wait_never_waits_for_the_line() -> None:
    typed, done = threading.Event(), threading.Event()

    def read() -> str:
        typed.wait(5)
        done.set()
        return "late"

    task = asyncio.ensure_future(read_in_thread(read, "test-reader"))
    await asyncio.sleep(0.01)
    task.cancel()  # Ctrl-C while nothing was typed
    with pytest.raises(asyncio.CancelledError):
        await task
    typed.set()  # the line arrives after all; it goes nowhere
    assert done.wait(5)
    await asyncio.sleep(0.05)


def test_a_line_after_the_loop_closed_goes_nowhere() -> None:
    typed = threading.Event()

    async def start() -> None:
        task = asyncio.ensure_future(read_in_thread(lambda: typed.wait(5), "late-reader"))
        await asyncio.sleep(0)
        task.cancel()

    asyncio.run(start())  # the loop is closed now
    typed.set()
    for thread in threading.enumerate():
        if thread.name == "late-reader":
            thread.join(5)  # no exception escapes the thread (filterwarnings would fail)
