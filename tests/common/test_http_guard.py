"""The guarded httptools protocol on a real uvicorn server in this event loop, short deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from uvicorn.server import ServerState

from secure_mcp.common.body_guard import BodyGuardMiddleware
from secure_mcp.common.connection_limits import ConnectionLimits
from secure_mcp.common.http_guard import LOOP, MAX_HEAD, guarded_protocol, uvicorn_options
from tests.support.raw_http import RawConnection, many_raw, raw, request_head

HEAD_TIMEOUT = 0.3
BODY_TIMEOUT = 0.3
WAIT = 3.0  # seconds an answer may take on a busy machine


class App:
    """Routes: `/` answers, `/busy` waits for `release`, `/echo` answers the body's length."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def ok(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def busy(self, request: Request) -> Response:
        await self.release.wait()
        return PlainTextResponse("done")

    async def echo(self, request: Request) -> Response:
        return PlainTextResponse(str(len(await request.body())))

    def asgi(self) -> BodyGuardMiddleware:
        routes = [
            Route("/", self.ok, methods=["GET", "POST"]),
            Route("/busy", self.busy),
            Route("/echo", self.echo, methods=["POST"]),
        ]
        return BodyGuardMiddleware(Starlette(routes=routes), timeout=BODY_TIMEOUT, limit=1024)


@contextlib.asynccontextmanager
async def serving(app: App, **limits: float) -> AsyncIterator[int]:
    """uvicorn with the guarded protocol on an ephemeral port; yields the port."""
    values = {"header_timeout": HEAD_TIMEOUT, "body_timeout": BODY_TIMEOUT, **limits}
    settings = ConnectionLimits(**values)  # type: ignore[arg-type]
    config = uvicorn.Config(
        app.asgi(), lifespan="off", log_config=None, **uvicorn_options(settings)
    )
    listener = socket.create_server(("127.0.0.1", 0))  # listening now: clients may connect
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        yield listener.getsockname()[1]
    finally:
        app.release.set()
        server.should_exit = server.force_exit = True
        await task


async def status_of(connection: RawConnection) -> bytes:
    """The status line of the next answer on `connection`."""
    async with asyncio.timeout(WAIT):
        return (await connection.reader.readline()).rstrip()


def get(port: int, path: str = "/") -> bytes:
    return request_head("GET", path, port)


async def test_a_silent_connection_is_closed_quietly() -> None:
    async with serving(App()) as port, raw(port, "127.0.0.1") as connection:
        assert await connection.answer(WAIT) == b""


async def test_a_partial_head_gets_408_then_close(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "secure_mcp.connections")
    async with serving(App()) as port, many_raw(port, "127.0.0.1", get(port)[:-2], 5) as slow:
        answers = await asyncio.gather(*(c.answer(WAIT) for c in slow))
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert answer.endswith(b"\r\n\r\nThe request head took too long.\r\n")
    lines = [r.getMessage() for r in caplog.records if "request head" in r.getMessage()]
    assert len(lines) <= 1  # five events, at most one line (aggregated per minute)


async def test_a_head_trickling_in_within_the_deadline_is_served() -> None:
    async with serving(App()) as port, raw(port, "127.0.0.1") as connection:
        for byte in get(port):
            await connection.send(bytes([byte]))
            await asyncio.sleep(HEAD_TIMEOUT / 100)
        assert await status_of(connection) == b"HTTP/1.1 200 OK"


async def test_the_next_request_on_a_kept_alive_connection_has_a_deadline_too() -> None:
    async with serving(App()) as port, raw(port, "127.0.0.1", get(port)) as connection:
        assert await status_of(connection) == b"HTTP/1.1 200 OK"
        await asyncio.sleep(HEAD_TIMEOUT * 2)  # idle between requests: uvicorn's keep-alive
        await connection.send(get(port)[:10])
        answer = await connection.answer(WAIT)
    assert b"HTTP/1.1 408 Request Timeout\r\n" in answer


async def test_the_per_source_cap_lets_the_oldest_idle_connection_go() -> None:
    async with (
        serving(App(), max_connections=10, max_connections_per_source=3) as port,
        many_raw(port, "127.0.0.2", b"", 3) as idle,
        raw(port, "127.0.0.3") as other,
        raw(port, "127.0.0.2", get(port)) as newcomer,
    ):
        assert await status_of(newcomer) == b"HTTP/1.1 200 OK"
        assert await idle[0].answer(WAIT) == b""  # the oldest of the crowding source
        await asyncio.sleep(0.05)
        assert not idle[1].closed_by_server()
        assert not other.closed_by_server()


async def test_the_overall_cap_takes_from_the_most_crowded_source() -> None:
    async with (
        serving(App(), max_connections=4, max_connections_per_source=3) as port,
        raw(port, "127.0.0.4") as lonely,
        many_raw(port, "127.0.0.5", b"", 3) as crowd,
        raw(port, "127.0.0.6", get(port)) as newcomer,
    ):
        assert await status_of(newcomer) == b"HTTP/1.1 200 OK"
        assert await crowd[0].answer(WAIT) == b""
        await asyncio.sleep(0.05)
        assert not lonely.closed_by_server()


async def test_a_body_still_arriving_can_make_room() -> None:
    head = request_head("POST", "/echo", 0, "Content-Length: 100")
    async with (
        serving(App(), max_connections=1, max_connections_per_source=1) as port,
        raw(port, "127.0.0.7", head + b"x") as uploading,
    ):
        await asyncio.sleep(0.05)
        async with raw(port, "127.0.0.7", get(port)) as newcomer:
            assert await status_of(newcomer) == b"HTTP/1.1 200 OK"
        assert await uploading.answer(WAIT) == b""


async def test_when_every_connection_is_busy_the_newcomer_gets_503() -> None:
    app = App()
    async with (
        serving(app, max_connections=2, max_connections_per_source=2) as port,
        many_raw(port, "127.0.0.8", get(port, "/busy"), 2) as busy,
    ):
        await asyncio.sleep(0.05)
        async with raw(port, "127.0.0.9", get(port)) as refused:
            answer = await refused.answer(WAIT)
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"\r\nretry-after: 1\r\n" in answer
        app.release.set()
        assert [await status_of(c) for c in busy] == [b"HTTP/1.1 200 OK"] * 2


async def test_an_unread_body_cannot_hold_the_connection() -> None:
    # `/` answers without reading the body; dripping the rest must not keep the connection.
    head = request_head("POST", "/", 0, "Content-Length: 100000")
    async with serving(App()) as port, raw(port, "127.0.0.10", head + b"x" * 2000) as dripper:
        assert await status_of(dripper) == b"HTTP/1.1 200 OK"

        async def drip() -> None:
            while True:
                await asyncio.sleep(BODY_TIMEOUT / 5)
                await dripper.send(b"x")

        dripping = asyncio.create_task(drip())
        try:
            rest = await dripper.answer(BODY_TIMEOUT + WAIT)
        finally:
            dripping.cancel()
    assert rest.endswith(b"ok")  # the rest of the answer, then the close


async def test_a_body_that_finishes_after_the_answer_keeps_the_connection() -> None:
    head = request_head("POST", "/", 0, "Content-Length: 100000")
    async with (
        serving(App(), header_timeout=WAIT) as port,
        raw(port, "127.0.0.11", head + b"x" * 2000) as client,
    ):
        assert await status_of(client) == b"HTTP/1.1 200 OK"
        await client.send(b"x" * 98000)
        await asyncio.sleep(BODY_TIMEOUT * 2)  # past the body deadline: it no longer applies
        await client.send(get(port))
        async with asyncio.timeout(WAIT):
            rest = await client.reader.readuntil(b"HTTP/1.1 200 OK")
    assert rest.endswith(b"HTTP/1.1 200 OK")


async def test_the_body_deadline_answers_408() -> None:
    head = request_head("POST", "/echo", 0, "Content-Length: 10")
    async with serving(App()) as port, raw(port, "127.0.0.12", head + b"12345") as slow:
        answer = await slow.answer(WAIT)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"\r\nconnection: close\r\n" in answer


async def test_uvicorns_own_warnings_are_thinned_out(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "uvicorn.error")
    async with serving(App()) as port:
        for _ in range(5):
            async with raw(port, "127.0.0.13", b"NOT HTTP AT ALL\r\n\r\n") as bad:
                assert (await bad.answer(WAIT)).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    invalid = [r for r in caplog.records if r.getMessage().startswith("Invalid HTTP request")]
    assert len(invalid) <= 1


def test_uvicorn_options() -> None:
    options = uvicorn_options(ConnectionLimits())
    assert options["proxy_headers"] is False  # a forged X-Forwarded-For picks no other source
    assert options["ws"] == "none"
    assert options["loop"] == LOOP == "uvloop"  # installed here (not on Windows)
    assert issubclass(options["http"], guarded_protocol(ConnectionLimits()).__mro__[1])


async def test_a_source_whose_connections_are_all_busy_gets_503_others_do_not() -> None:
    app = App()
    async with (
        serving(app, max_connections=10, max_connections_per_source=2) as port,
        many_raw(port, "127.0.0.14", get(port, "/busy"), 2),
    ):
        await asyncio.sleep(0.05)
        async with raw(port, "127.0.0.14", get(port)) as refused:
            assert await status_of(refused) == b"HTTP/1.1 503 Service Unavailable"
        async with raw(port, "127.0.0.15", get(port)) as other:
            assert await status_of(other) == b"HTTP/1.1 200 OK"


INVALID = b"HTTP/1.1 400 Bad Request\r\n"
HOST = "Host: 127.0.0.1"


def head_of(size: int, *lines: str) -> bytes:
    """A GET head of exactly `size` bytes (padded with one header), plus `lines`."""
    bare = request_head("GET", "/", 0, *lines, "X-Pad: ")
    return request_head("GET", "/", 0, *lines, "X-Pad: " + "a" * (size - len(bare)))


async def answers_to(port: int, source: str, *parts: bytes, pause: float = 0.0) -> bytes:
    """Everything the server answers to `parts` (sent `pause` seconds apart) until it closes."""
    async with raw(port, source) as connection:
        for part in parts:
            await connection.send(part)
            await asyncio.sleep(pause)
        return await connection.answer(WAIT)


BAD_HEADS = {
    "no-host": b"GET / HTTP/1.1\r\n\r\n",
    "two-hosts": request_head("GET", "/", 0, HOST),
    "http-0.9": b"GET /\r\n\r\n",
    "http-2.0-as-text": b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    "content-length-and-chunked": request_head(
        "POST", "/echo", 0, "Content-Length: 3", "Transfer-Encoding: chunked"
    ),
    "two-content-lengths": request_head(
        "POST", "/echo", 0, "Content-Length: 3", "Content-Length: 3"
    ),
    "gzip-then-chunked": request_head("POST", "/echo", 0, "Transfer-Encoding: gzip, chunked"),
    "obs-fold": request_head("GET", "/", 0, "X-A: 1\r\n 2"),
    "control-in-value": request_head("GET", "/", 0, "X-A: 1\x012"),
    "bare-lf": b"GET / HTTP/1.1\nHost: a\n\n",
    "bad-chunk-size": request_head("POST", "/echo", 0, "Transfer-Encoding: chunked") + b"zz\r\n",
}


@pytest.mark.parametrize("head", BAD_HEADS.values(), ids=BAD_HEADS.keys())
async def test_what_h11_refused_is_refused(head: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "uvicorn.error")
    async with serving(App()) as port:
        answer = await answers_to(port, "127.0.1.1", head + b"abc")
    assert answer.startswith(INVALID)
    assert answer.endswith(b"\r\nconnection: close\r\n\r\nInvalid HTTP request received.")
    assert "Traceback" not in caplog.text


async def test_chunked_bodies_and_http_1_0_are_served() -> None:
    chunked = request_head("POST", "/echo", 0, "Transfer-Encoding: chunked", "Connection: close")
    async with serving(App()) as port:
        answer = await answers_to(
            port, "127.0.1.2", chunked + b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
        )
        old = await answers_to(port, "127.0.1.2", b"GET / HTTP/1.0\r\n\r\n")  # no Host: fine
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\n5")
    assert old.startswith(b"HTTP/1.1 200 OK\r\n")
    assert old.endswith(b"ok")  # then closed


async def test_whitespace_around_header_values_is_not_part_of_them() -> None:
    head = request_head("GET", "/", 0, "Connection: close", "X-Spaced: \t value \t ")
    seen: list[str] = []
    app = App()

    async def spaced(request: Request) -> Response:
        seen.append(request.headers["x-spaced"])
        return PlainTextResponse("ok")

    app.ok = spaced  # type: ignore[method-assign]
    async with serving(app) as port:
        assert (await answers_to(port, "127.0.1.11", head)).startswith(b"HTTP/1.1 200 OK\r\n")
    assert seen == ["value"]  # RFC 9110 5.5


async def test_expect_100_continue() -> None:
    head = request_head("POST", "/echo", 0, "Content-Length: 3", "Expect: 100-continue")
    async with serving(App()) as port, raw(port, "127.0.1.3", head) as client:
        async with asyncio.timeout(WAIT):
            assert await client.reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        await client.send(b"abc")
        assert await status_of(client) == b"HTTP/1.1 200 OK"


async def test_a_head_up_to_16_kib_is_served_a_larger_one_refused() -> None:
    async with serving(App(), header_timeout=WAIT) as port:
        largest = await answers_to(port, "127.0.1.4", head_of(MAX_HEAD, "Connection: close"))
        at_once = await answers_to(port, "127.0.1.4", head_of(MAX_HEAD + 1))
        long = head_of(2 * MAX_HEAD)
        parts = long[: MAX_HEAD // 2], long[MAX_HEAD // 2 : MAX_HEAD], long[MAX_HEAD : MAX_HEAD + 9]
        pieces = await answers_to(port, "127.0.1.4", *parts, pause=0.05)
    assert largest.startswith(b"HTTP/1.1 200 OK\r\n")
    assert at_once.startswith(INVALID)
    assert pieces.startswith(INVALID)  # refused before the head ends: nothing more is kept


async def test_head_bytes_are_counted_per_request() -> None:
    # Kept-alive, pipelined or not, each request's head has its own 16 KiB.
    big = head_of(MAX_HEAD - 100)
    post = request_head("POST", "/echo", 0, "Content-Length: 10000")
    async with serving(App(), header_timeout=WAIT) as port:
        answer = await answers_to(
            port,
            "127.0.1.5",
            big,
            big + big[:1000],
            big[1000:] + post,
            b"x" * 10000 + big[:1000],  # a body's end and the next head in one read
            big[1000:] + head_of(1000, "Connection: close"),
            pause=0.05,
        )
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 6


async def test_pipelined_requests_are_answered_in_order() -> None:
    post = request_head("POST", "/echo", 0, "Content-Length: 3") + b"abc"
    last = request_head("GET", "/", 0, "Connection: close")
    async with serving(App()) as port:
        answer = await answers_to(port, "127.0.1.6", get(port) + post + last)
    bodies = [part.rsplit(b"\r\n\r\n", 1)[-1] for part in answer.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"ok", b"3", b"ok"]


async def test_a_bad_pipelined_request_is_refused_after_the_good_ones() -> None:
    app = App()
    async with serving(app) as port, raw(port, "127.0.1.7", get(port, "/busy")) as client:
        await asyncio.sleep(0.05)
        await client.send(get(port) + b"NOT HTTP\r\n\r\n")
        await asyncio.sleep(0.05)
        app.release.set()
        answer = await client.answer(WAIT)
    parts = answer.split(b"HTTP/1.1 ")
    assert [p.split(b"\r\n")[0] for p in parts[1:]] == [b"200 OK", b"200 OK", b"400 Bad Request"]
    assert parts[1].endswith(b"done")
    assert parts[2].endswith(b"ok")


async def test_a_pipelined_head_too_large_is_refused_after_the_answer() -> None:
    app = App()
    async with (
        serving(app, header_timeout=WAIT) as port,
        raw(port, "127.0.1.8", get(port, "/busy")) as client,
    ):
        await asyncio.sleep(0.05)
        await client.send(head_of(2 * MAX_HEAD)[: MAX_HEAD + 10])
        await asyncio.sleep(0.05)
        await client.send(b"a" * MAX_HEAD)  # dropped: the request is refused already
        await asyncio.sleep(0.05)
        app.release.set()
        answer = await client.answer(WAIT)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\nInvalid HTTP request received.")


async def test_a_pipelined_head_has_its_deadline_once_the_answer_is_out() -> None:
    app = App()
    async with serving(app) as port, raw(port, "127.0.1.9", get(port, "/busy")) as client:
        await asyncio.sleep(0.05)
        await client.send(get(port)[:10])
        await asyncio.sleep(HEAD_TIMEOUT * 2)  # no deadline while the first is answered
        app.release.set()
        answer = await client.answer(WAIT)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"done" + REQUEST_TIMEOUT_LINE in answer


REQUEST_TIMEOUT_LINE = b"HTTP/1.1 408 Request Timeout\r\n"


async def test_a_connection_with_a_request_waiting_its_turn_is_not_evicted() -> None:
    app = App()
    async with (
        serving(app, max_connections=2, max_connections_per_source=1) as port,
        raw(port, "127.0.1.10", get(port, "/busy") + get(port)) as pipelining,
    ):
        await asyncio.sleep(0.05)
        async with raw(port, "127.0.1.10", get(port)) as refused:
            assert await status_of(refused) == b"HTTP/1.1 503 Service Unavailable"
        app.release.set()
        assert await status_of(pipelining) == b"HTTP/1.1 200 OK"


class FakeTransport:
    """Just enough of an asyncio transport for the protocol's own bookkeeping."""

    def __init__(self) -> None:
        self.closing = False
        self.written = b""

    def get_extra_info(self, name: str) -> object:
        return {"peername": ("127.0.0.16", 5000), "sockname": ("127.0.0.1", 80)}.get(name)

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


async def test_deadlines_do_nothing_to_a_connection_already_closing() -> None:
    config = uvicorn.Config(
        App().asgi(), log_config=None, lifespan="off", **uvicorn_options(ConnectionLimits())
    )
    config.load()
    protocol = config.http_protocol_class(  # type: ignore[call-arg]
        config=config, server_state=ServerState(), app_state={}
    )
    transport = FakeTransport()
    protocol.connection_made(transport)
    transport.closing = True
    protocol.data_received(b"GET / HTTP/1.1\r\n")
    protocol._head_expired()
    assert transport.written == b""
    protocol.connection_lost(None)
