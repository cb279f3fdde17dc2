"""Network failures become a reported error and a 503 answer, never an exception."""

from __future__ import annotations

import httpx2

from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.auth.transport import ReportingTransport


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
