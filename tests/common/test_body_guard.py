"""The body guard in process: scripted ASGI messages, no sockets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from typing import Any

import pytest
from starlette.types import Message

from secure_mcp.common.body_guard import BodyGuardMiddleware

HTTP = {"type": "http", "client": ("127.0.0.1", 5000), "headers": []}


class Script:
    """A `receive` that plays messages (a float pauses that many seconds), then waits forever."""

    def __init__(self, *steps: Message | float) -> None:
        self.steps = list(steps)

    async def __call__(self) -> Message:
        while self.steps:
            step = self.steps.pop(0)
            if isinstance(step, float):
                await asyncio.sleep(step)
                continue
            return step
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def chunk(body: bytes, more: bool = True) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


class App:
    """Records every message it receives (reading `reads` times) and answers 200."""

    def __init__(self, reads: int = 1) -> None:
        self.reads = reads
        self.received: list[Message] = []
        self.called = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.called = True
        for _ in range(self.reads):
            self.received.append(await receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def run(guard: BodyGuardMiddleware, receive: Script) -> list[MutableMapping[str, Any]]:
    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await guard(dict(HTTP), receive, send)
    return sent


async def test_the_body_reaches_the_app_in_one_piece() -> None:
    app = App()
    guard = BodyGuardMiddleware(app, timeout=1.0, limit=100)
    await run(guard, Script(chunk(b"ab"), 0.01, chunk(b"cd"), chunk(b"e", more=False)))
    assert app.received == [chunk(b"abcde", more=False)]


async def test_a_slow_body_is_answered_408_and_the_app_never_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "secure_mcp.connections")
    app = App()
    guard = BodyGuardMiddleware(app, timeout=0.05, limit=100)
    for _ in range(3):
        sent = await run(guard, Script(chunk(b"ab"), 1.0, chunk(b"c", more=False)))
        assert sent[0]["status"] == 408
        assert (b"connection", b"close") in sent[0]["headers"]
        assert sent[1]["body"] == b"The request body took too long.\r\n"
    assert not app.called
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "slow client: request body from 127.0.0.1 incomplete after 0.05 s; answered 408"
    ]


async def test_a_hang_up_mid_body_is_one_quiet_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "secure_mcp.connections")
    app = App()
    guard = BodyGuardMiddleware(app, timeout=1.0, limit=100)
    for _ in range(50):
        assert await run(guard, Script(chunk(b"ab"), {"type": "http.disconnect"})) == []
    assert not app.called
    assert [r.getMessage() for r in caplog.records] == [
        "client 127.0.0.1 hung up before its request body was complete"
    ]


async def test_an_over_long_body_goes_to_the_app_unfinished_for_its_own_refusal() -> None:
    app = App(reads=3)
    guard = BodyGuardMiddleware(app, timeout=1.0, limit=3)
    rest = chunk(b"ef", more=False)
    await run(guard, Script(chunk(b"ab"), chunk(b"cd"), rest, {"type": "http.disconnect"}))
    assert app.received == [chunk(b"abcd"), rest, {"type": "http.disconnect"}]


async def test_the_rest_of_an_over_long_body_is_still_bound_by_the_deadline() -> None:
    app = App(reads=2)
    guard = BodyGuardMiddleware(app, timeout=0.05, limit=1)
    await run(guard, Script(chunk(b"ab"), 1.0, chunk(b"c", more=False)))
    assert app.received == [chunk(b"ab"), {"type": "http.disconnect"}]


async def test_other_scopes_pass_untouched() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    guard = BodyGuardMiddleware(app, timeout=0.01, limit=1)
    await guard({"type": "lifespan"}, Script(), Script())
    assert seen == ["lifespan"]
