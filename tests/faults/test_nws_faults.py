"""The NWS slow, failing or sending garbage: tools answer with clear errors, the server stays up."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from tests.faults.fake_nws import FakeNws, hang, raw, recorded, serve, slow
from tests.support.flows import Stack, live_auth, run_stack
from tests.support.nws_fixtures import ALERTS_HI, POINT_404, POINT_SGX, PROBLEM_500

pytestmark = pytest.mark.process

ANAHEIM = {"latitude": 33.8, "longitude": -117.882}


@dataclass
class Upstream:
    """weather.py pointed at a fake NWS, and a valid token for it."""

    stack: Stack
    nws: FakeNws
    token: str


@pytest.fixture(scope="module")
def upstream_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, FakeNws]]:
    """oauth.py and weather.py (live NWS mode) with `--nws-base` at the fake NWS."""
    nws = FakeNws()
    with serve(nws) as base:
        tmp_path = tmp_path_factory.mktemp("nws-faults")
        args = ("--nws-base", base)
        with run_stack(tmp_path, nws_replay=False, cache_ttl=30, weather_args=args) as stack:
            yield stack, nws
            assert "Traceback" not in stack.weather.program.output()


@pytest.fixture
async def upstream(upstream_stack: tuple[Stack, FakeNws]) -> AsyncIterator[Upstream]:
    """A healthy fake NWS to start from, and a token."""
    stack, nws = upstream_stack
    nws.healthy()
    async with live_auth(stack.oauth, stack.weather.url) as auth:
        _, tokens = await auth.tokens()
    yield Upstream(stack, nws, tokens["access_token"])
    async with httpx2.AsyncClient() as http:  # the server is still up after every fault
        assert (await http.get(f"{stack.weather.origin}/health")).status_code == 200


async def call(up: Upstream, name: str, arguments: Mapping[str, object]) -> CallToolResult:
    """One tool call over a fresh MCP connection."""
    headers = {"authorization": f"Bearer {up.token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(up.stack.weather.url, http_client=http)) as client,
    ):
        return await client.call_tool(name, dict(arguments))


def error_text(result: CallToolResult, tool: str) -> str:
    """The message of an error result (asserted to be one clear line, SDK prefix removed)."""
    assert result.is_error
    text = str(result.content[0].text)  # type: ignore[union-attr]
    assert "Traceback" not in text
    assert "\n" not in text
    prefix = f"Error executing tool {tool}: "
    assert text.startswith(prefix), text
    return text.removeprefix(prefix)


async def test_garbage_body_is_a_clear_error(upstream: Upstream) -> None:
    upstream.nws.on("/alerts/active", raw(b"<html>not json</html>"))
    result = await call(upstream, "get_alerts", {"state": "CA"})
    assert error_text(result, "get_alerts") == (
        "The National Weather Service sent a response that is not valid JSON."
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[]", id="array"),
        pytest.param(b'{"features": "nope"}', id="features-not-a-list"),
        pytest.param(b'{"features": [null, 1, {"properties": []}]}', id="odd-features"),
        pytest.param(b"null", id="null"),
    ],
)
async def test_wrong_shaped_alerts_do_not_crash(upstream: Upstream, body: bytes) -> None:
    upstream.nws.on("/alerts/active", raw(body))
    result = await call(upstream, "get_alerts", {"state": "CA"})
    text = result.content[0].text  # type: ignore[union-attr]
    assert "Traceback" not in text
    assert not result.is_error or "\n" not in text


async def test_wrong_shaped_point_is_a_clear_error_and_not_cached(upstream: Upstream) -> None:
    where = {"latitude": 34.0, "longitude": -118.0}
    upstream.nws.on("/points/34,-118", raw(b'{"properties": {"forecast": 42}}'))
    result = await call(upstream, "get_forecast", where)
    assert error_text(result, "get_forecast") == (
        "The National Weather Service has no forecast for 34.0000, -118.0000."
    )
    upstream.nws.on("/points/34,-118", recorded(POINT_SGX))
    assert not (await call(upstream, "get_forecast", where)).is_error


async def test_upstream_500_is_a_clear_error_after_retries(upstream: Upstream) -> None:
    upstream.nws.on("/alerts/active", recorded(PROBLEM_500, 500))
    before = len(upstream.nws.hits)
    result = await call(upstream, "get_alerts", {"state": "CA"})
    text = error_text(result, "get_alerts")
    assert text.startswith("The National Weather Service is having problems (HTTP 500: ")
    assert text.endswith("); try again later.")
    assert upstream.nws.hits[before:] == ["/alerts/active"] * 3  # bounded retries


async def test_upstream_recovers_within_the_retries(upstream: Upstream) -> None:
    upstream.nws.on("/alerts/active", raw(b"{}", 503), recorded(ALERTS_HI))
    result = await call(upstream, "get_alerts", {"state": "HI"})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["count"] == 5


async def test_point_outside_coverage(upstream: Upstream) -> None:
    upstream.nws.on("/points/51.5,-0.1", recorded(POINT_404, 404))
    result = await call(upstream, "get_forecast", {"latitude": 51.5, "longitude": -0.1})
    assert "outside the US National Weather Service area" in error_text(result, "get_forecast")


async def test_slow_upstream_within_the_timeout(upstream: Upstream) -> None:
    upstream.nws.on("/alerts/active", slow(1.5, recorded(ALERTS_HI)))
    start = time.monotonic()
    result = await call(upstream, "get_alerts", {"state": "HI"})
    assert not result.is_error
    assert time.monotonic() - start >= 1.5


async def test_hung_upstream_times_out_and_others_are_served(upstream: Upstream) -> None:
    # weather.py waits 10 s per attempt, 3 attempts (backoff 0.5 s + 1 s): about 31.5 s.
    release = threading.Event()
    upstream.nws.on("/alerts/active", hang(release))
    try:
        pending = asyncio.create_task(call(upstream, "get_alerts", {"state": "CA"}))
        await asyncio.sleep(0.5)
        # Meanwhile the server answers other work at once.
        start = time.monotonic()
        forecast = await call(upstream, "get_forecast", ANAHEIM)
        assert not forecast.is_error
        assert time.monotonic() - start < 5
        result = await asyncio.wait_for(pending, timeout=60)
    finally:
        release.set()
    assert error_text(result, "get_alerts") == (
        "The National Weather Service did not answer in time; try again later."
    )
