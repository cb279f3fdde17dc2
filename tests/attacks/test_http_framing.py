"""HTTP/1.1 framing on both real servers: malformed and ambiguous requests (request smuggling),
chunked bodies, `Expect: 100-continue`, HTTP/1.0, pipelining, the Host rules, the head cap.

Each test talks from its own loopback source address (127.0.x.y), as in test_slow_clients.py.
"""

from __future__ import annotations

import asyncio

import pytest

from secure_mcp.common.http_guard import MAX_HEAD
from tests.support.flows import LiveAuth, Stack
from tests.support.raw_http import raw, request_head

pytestmark = pytest.mark.process

WAIT = 10.0
INVALID = b"\r\nconnection: close\r\n\r\nInvalid HTTP request received."
FORM = "Content-Type: application/x-www-form-urlencoded"


@pytest.fixture(params=["weather", "oauth"])
def port(request: pytest.FixtureRequest, stack: Stack) -> int:
    """The port of one of the two servers."""
    server = stack.weather if request.param == "weather" else stack.oauth
    return int(server.port)


async def exchange(port: int, source: str, data: bytes) -> bytes:
    """Send `data` on a new connection; everything answered until the server closes."""
    async with raw(port, source, data) as connection:
        return await connection.answer(WAIT)


def statuses(answer: bytes) -> list[bytes]:
    """The status lines of the answers in `answer`, in order."""
    return [part.split(b"\r\n", 1)[0] for part in answer.split(b"HTTP/1.1 ")[1:]]


def smuggling(port: int) -> dict[str, bytes]:
    """Requests whose framing is malformed or ambiguous: each must be refused, never guessed."""
    post = ("POST", "/token", port, FORM)
    return {
        "request-line": b"GET /a b HTTP/1.1\r\n\r\n",
        "header-name": request_head("GET", "/health", port, "Bad Name: 1"),
        "length-and-chunked": request_head(*post, "Content-Length: 4", "Transfer-Encoding: chunked")
        + b"0\r\n\r\n",
        "two-lengths": request_head(*post, "Content-Length: 1", "Content-Length: 1") + b"a",
        "conflicting-lengths": request_head(*post, "Content-Length: 1, 2") + b"ab",
        "unknown-coding": request_head(*post, "Transfer-Encoding: gzip, chunked") + b"0\r\n\r\n",
        "no-host": b"GET /health HTTP/1.1\r\n\r\n",
        "two-hosts": request_head("GET", "/health", port, f"Host: 127.0.0.1:{port}"),
        "head-too-large": request_head("GET", "/health", port, "X-Pad: " + "a" * MAX_HEAD),
    }


@pytest.mark.parametrize("case", list(smuggling(0)))
async def test_malformed_and_ambiguous_requests_get_400_and_close(
    port: int, stack: Stack, case: str
) -> None:
    answer = await exchange(port, "127.0.20.1", smuggling(port)[case])
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert answer.endswith(INVALID)


async def test_malformed_requests_are_logged_once_without_a_traceback(stack: Stack) -> None:
    program = stack.weather.program
    before = len(program.output().splitlines())
    for _ in range(5):
        await exchange(stack.weather.port, "127.0.20.2", b"NOT HTTP AT ALL\r\n\r\n")
    await asyncio.sleep(0.3)
    new = program.output().splitlines()[before:]
    assert len([line for line in new if "Invalid HTTP request" in line]) <= 1
    assert not [line for line in new if "Traceback" in line]


async def test_a_foreign_host_gets_421(port: int) -> None:
    head = request_head("GET", "/health", 0, "Connection: close").replace(
        b"127.0.0.1:0", b"evil.example"
    )
    assert statuses(await exchange(port, "127.0.20.3", head)) == [b"421 Misdirected Request"]


async def test_a_chunked_body_reaches_the_endpoint(stack: Stack, auth_token: str) -> None:
    body = b'{"jsonrpc": "2.0", "id": 7, "method": "ping"}'
    async with raw(stack.weather.port, "127.0.20.4", mcp_head(stack, auth_token)) as connection:
        await connection.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        async with asyncio.timeout(WAIT):
            answer = await connection.reader.readuntil(b'"result"')
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'"id":7' in answer


def mcp_head(stack: Stack, token: str) -> bytes:
    """The head of a chunked POST to weather.py's /mcp with `token`."""
    return request_head(
        "POST",
        "/mcp",
        stack.weather.port,
        f"Authorization: Bearer {token}",
        "Content-Type: application/json",
        "Accept: application/json, text/event-stream",
        "Transfer-Encoding: chunked",
    )


async def test_a_chunked_body_over_the_limit_gets_413(stack: Stack, auth_token: str) -> None:
    chunk = b"x" * 65536
    async with raw(stack.weather.port, "127.0.20.5", mcp_head(stack, auth_token)) as connection:
        for _ in range(4 * 16 + 1):  # just over the 4 MiB limit
            await connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await connection.send(b"0\r\n\r\n")
        async with asyncio.timeout(WAIT):
            status = await connection.reader.readline()
    assert status == b"HTTP/1.1 413 Request Entity Too Large\r\n"


@pytest.fixture
async def auth_token(auth: LiveAuth) -> str:
    """A valid access token for weather.py."""
    _, tokens = await auth.tokens()
    return str(tokens["access_token"])


async def test_expect_100_continue(stack: Stack) -> None:
    port = stack.oauth.port
    body = b"grant_type=nope"
    head = request_head(
        "POST", "/token", port, FORM, f"Content-Length: {len(body)}", "Expect: 100-continue"
    )
    async with raw(port, "127.0.20.6", head) as connection:
        async with asyncio.timeout(WAIT):
            interim = await connection.reader.readuntil(b"\r\n\r\n")
        await connection.send(body)
        async with asyncio.timeout(WAIT):
            answer = await connection.reader.readuntil(b"}")
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert answer.startswith(b"HTTP/1.1 401 Unauthorized\r\n")  # the body was read: no client
    assert b'"invalid_client"' in answer


async def test_http_1_0_is_answered_then_closed(port: int) -> None:
    answer = await exchange(port, "127.0.20.7", b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
    assert statuses(answer) == [b"421 Misdirected Request"]  # 1.0 may omit Host; ours is checked
    answer = await exchange(
        port, "127.0.20.7", f"GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    )
    assert statuses(answer) == [b"200 OK"]
    assert b"\r\nconnection: close\r\n" in answer


async def test_pipelined_requests_are_answered_in_order(port: int) -> None:
    one = request_head("GET", "/health", port)
    last = request_head("GET", "/nowhere", port, "Connection: close")
    answer = await exchange(port, "127.0.20.8", one + one + b"NOT HTTP\r\n\r\n")
    assert statuses(answer) == [b"200 OK", b"200 OK", b"400 Bad Request"]
    answer = await exchange(port, "127.0.20.8", one + last)
    assert statuses(answer)[0] == b"200 OK"
    assert len(statuses(answer)) == 2
