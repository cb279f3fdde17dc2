"""Slow and vanishing clients against both real servers: slow heads, slow bodies, hang-ups.

Each test uses its own loopback source address (127.0.0.x), so the per-source limits it fills
never touch the rest of the suite, which talks from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx2
import pytest

from tests.support.attack_stack import BODY_TIMEOUT, HEADER_TIMEOUT
from tests.support.flows import MCP_ACCEPT, LiveAuth, Stack
from tests.support.processes import Program
from tests.support.raw_http import many_raw, open_raw, raw, request_head

pytestmark = pytest.mark.process

PER_SOURCE = 256  # the documented default of --max-connections-per-source
SLOW_SOCKETS = 300
MARGIN = 3.0  # seconds of slack on top of a deadline on a busy machine


@dataclass(frozen=True)
class Target:
    """One server under attack: where it listens, what a slow POST looks like, its log."""

    name: str
    port: int
    post_path: str
    post_headers: tuple[str, ...]
    program: Program

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def post_head(self, length: int, *extra: str) -> bytes:
        """The head of a POST whose body will be `length` bytes."""
        headers = (*self.post_headers, *extra, f"Content-Length: {length}")
        return request_head("POST", self.post_path, self.port, *headers)


@pytest.fixture(params=["weather", "oauth"])
async def target(request: pytest.FixtureRequest, stack: Stack, auth: LiveAuth) -> Target:
    """weather.py's /mcp with a valid token (so the body is read), or oauth.py's /token."""
    if request.param == "weather":
        _, tokens = await auth.tokens()
        headers = (
            f"Authorization: Bearer {tokens['access_token']}",
            "Content-Type: application/json",
            f"Accept: {MCP_ACCEPT}",
        )
        return Target("weather", stack.weather.port, "/mcp", headers, stack.weather.program)
    form = ("Content-Type: application/x-www-form-urlencoded",)
    return Target("oauth", stack.oauth.port, "/token", form, stack.oauth.program)


def source_for(target: Target, test: int) -> str:
    """A loopback source address of its own for each test and server."""
    return f"127.0.{test}.{1 if target.name == 'weather' else 2}"


@contextlib.asynccontextmanager
async def client_from(source: str) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client whose connections leave from `source`."""
    transport = httpx2.AsyncHTTPTransport(local_address=source)
    async with httpx2.AsyncClient(transport=transport, timeout=10) as http:
        yield http


def log_lines(program: Program) -> list[str]:
    """The program's output lines, less access-log and outgoing-request lines."""
    lines = program.output().splitlines()
    return [line for line in lines if 'HTTP/1.1" ' not in line and "HTTP Request:" not in line]


async def test_slow_heads_are_cut_and_capped_while_requests_are_served(target: Target) -> None:
    source, quiet_source = source_for(target, 1), source_for(target, 2)
    partial = request_head("GET", "/health", target.port)[:-2] + b"X-Slow: 1"
    async with (
        many_raw(target.port, source, partial, SLOW_SOCKETS) as slow,
        many_raw(target.port, quiet_source, b"", 20) as silent,
    ):
        await asyncio.sleep(0.2)
        held = [c for c in slow if not c.closed_by_server()]
        # The per-source cap: the oldest were let go to make room, hundreds are still held.
        assert 100 <= len(held) <= PER_SOURCE
        start = time.monotonic()
        async with client_from(source) as http:  # same source as the attacker
            response = await http.get(target.url("/health"))
        assert response.status_code == 200
        assert time.monotonic() - start < 1.5
        # Every held one is cut once the header deadline passes, with a 408 (but the oldest,
        # closed quietly to admit the request above); one that sent nothing is just closed.
        answers = await asyncio.gather(*(c.answer(HEADER_TIMEOUT + MARGIN) for c in held))
        assert answers[0] == b""
        assert {a.split(b"\r\n")[0] for a in answers[1:]} == {b"HTTP/1.1 408 Request Timeout"}
        assert {await c.answer(MARGIN) for c in silent} == {b""}


async def test_slow_bodies_are_cut_with_408_while_requests_are_served(target: Target) -> None:
    source = source_for(target, 3)
    async with many_raw(target.port, source, target.post_head(100) + b"{", 200) as slow:
        start = time.monotonic()
        async with client_from(source) as http:
            response = await http.get(target.url("/health"))
        assert response.status_code == 200
        assert time.monotonic() - start < 1.5
        answers = await asyncio.gather(*(c.answer(BODY_TIMEOUT + MARGIN) for c in slow))
    assert time.monotonic() - start >= BODY_TIMEOUT - 0.5
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert b"\r\nconnection: close\r\n" in answer.lower()


async def test_unread_body_cannot_hold_the_connection(stack: Stack) -> None:
    # No token: weather.py answers 401 without reading the body; dripping the rest of it
    # must not keep the connection (and its slot) open.
    port = stack.weather.port
    head = request_head(
        "POST", "/mcp", port, "Content-Type: application/json", "Content-Length: 1000"
    )
    async with raw(port, "127.0.5.1", head + b"{") as connection:

        async def drip() -> None:
            while True:
                await asyncio.sleep(0.3)
                await connection.send(b" ")

        dripping = asyncio.create_task(drip())
        try:
            answer = await connection.answer(BODY_TIMEOUT + MARGIN)
        finally:
            dripping.cancel()
    assert answer.startswith(b"HTTP/1.1 401 Unauthorized\r\n")


async def test_hang_ups_mid_body_are_quiet(target: Target) -> None:
    source = source_for(target, 6)
    before = len(log_lines(target.program))
    for _ in range(50):
        connection = await open_raw(target.port, source, target.post_head(1000) + b'{"a": ')
        await asyncio.sleep(0.01)  # the server is now reading the body
        connection.abort()
    async with client_from(source) as http:
        assert (await http.get(target.url("/health"))).status_code == 200
    await asyncio.sleep(0.3)
    new = log_lines(target.program)[before:]
    assert not [line for line in new if "Traceback" in line]
    assert len(new) <= 2, new  # at most a line, aggregated: a flood cannot fill the disk
