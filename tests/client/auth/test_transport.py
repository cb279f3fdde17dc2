"""Network failures become a reported error and a 503 answer, never an exception."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx2

from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.auth.transport import Bounds, ReportingTransport


async def _fail_with(exc_type: type[httpx2.TransportError]) -> tuple[int, ClientConnectError]:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise exc_type("down", request=request)

    reports: list[ClientConnectError] = []
    transport = ReportingTransport(httpx2.MockTransport(handler), reports.append)
    async with httpx2.AsyncClient(transport=transport) as client:
        response = await client.get("http://127.0.0.1:1/mcp?x=secret")
    assert len(reports) == 1
    return response.status_code, reports[0]


async def test_connection_failure_is_reported_without_the_query() -> None:
    status, report = await _fail_with(httpx2.ConnectError)
    assert status == 503
    assert (
        str(report) == "Cannot reach http://127.0.0.1:1/mcp (ConnectError); is the server running?"
    )
    assert report.error == "server_unreachable"


async def test_timeout_is_reported_as_no_answer() -> None:
    status, report = await _fail_with(httpx2.ReadTimeout)
    assert status == 503
    assert str(report) == "No answer from http://127.0.0.1:1/mcp (ReadTimeout)."
    assert report.error == "timeout"


async def test_answers_pass_through() -> None:
    transport = ReportingTransport(
        httpx2.MockTransport(lambda request: httpx2.Response(204)), lambda report: None
    )
    async with httpx2.AsyncClient(transport=transport) as client:
        assert (await client.get("http://127.0.0.1:1/")).status_code == 204


def _bounded(inner: httpx2.AsyncBaseTransport, reports: list[ClientConnectError]) -> Any:
    bounds = Bounds(mcp_url="http://127.0.0.1:1/mcp", mcp_bytes=10, mcp_seconds=0.3)
    return ReportingTransport(inner, reports.append, bounds)


class _Body(httpx2.AsyncByteStream):
    def __init__(self, *chunks: bytes | Exception) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            if isinstance(chunk, Exception):
                raise chunk
            yield chunk


async def test_a_connection_cut_mid_body_is_reported_and_the_body_ends() -> None:
    reports: list[ClientConnectError] = []
    cut = httpx2.RemoteProtocolError("peer closed")
    transport = _bounded(
        httpx2.MockTransport(lambda request: httpx2.Response(200, stream=_Body(b"abc", cut))),
        reports,
    )
    async with httpx2.AsyncClient(transport=transport) as client:
        response = await client.get("http://127.0.0.1:1/mcp")
    assert response.content == b"abc"
    assert [r.error for r in reports] == ["server_unreachable"]


async def test_headers_that_never_come_end_at_the_deadline() -> None:
    class Silent(httpx2.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            await asyncio.sleep(30)
            raise AssertionError("not reached")  # pragma: no cover

    reports: list[ClientConnectError] = []
    async with httpx2.AsyncClient(transport=_bounded(Silent(), reports)) as client:
        response = await client.post("http://127.0.0.1:1/mcp")
    assert response.status_code == 503
    assert str(reports[0]) == (
        "No complete answer from http://127.0.0.1:1/mcp within 0.3 seconds; "
        "the client stopped waiting."
    )


async def test_the_listen_stream_is_not_bounded() -> None:
    reports: list[ClientConnectError] = []
    body = b"x" * 100
    transport = _bounded(
        httpx2.MockTransport(lambda request: httpx2.Response(200, content=body)), reports
    )
    async with httpx2.AsyncClient(transport=transport) as client:
        listen = await client.get("http://127.0.0.1:1/mcp", headers={"accept": "text/event-stream"})
        answer = await client.post("http://127.0.0.1:1/mcp")
    assert listen.content == body  # open by design; the SDK bounds each event (1 MiB)
    assert answer.status_code == 503  # a declared length over the limit: refused unread
    assert [r.error for r in reports] == ["response_too_large"]
    assert str(reports[0]).endswith("larger than the client's limit of 10 bytes; it was not read.")
