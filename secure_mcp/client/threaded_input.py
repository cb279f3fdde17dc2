"""One blocking read (a typed line) awaited from the event loop, in a daemon thread.

The chat prompt's plain-stdin reader and the `--paste` reader both use it: the loop keeps
running, and Ctrl-C (a cancelled await) never waits for Enter; a line typed later goes nowhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _settle(future: asyncio.Future[T], value: T | None, error: Exception | None) -> None:
    """Hand the outcome to the awaiting task, unless it stopped waiting (cancelled)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)  # type: ignore[arg-type]  # None only with an error


async def read_in_thread(read: Callable[[], T], name: str) -> T:
    """`read()` in a daemon thread named `name`; its result or exception, awaited."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def work() -> None:
        value, error = None, None
        try:
            value = read()
        except Exception as exc:  # handed to the awaiting task, not lost in the thread
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(_settle, future, value, error)

    threading.Thread(target=work, name=name, daemon=True).start()
    return await future
