"""The NWS client: headers, retries with injectable sleep, the /points cache, every failure mode."""

from __future__ import annotations

import httpx2
import pytest

from secure_mcp.weather.nws import NwsClient, NwsError, OutsideCoverageError
from tests.support.nws_fixtures import (
    ALERTS_EMPTY,
    FORECAST_PATH,
    POINT_404,
    POINT_SGX,
    PROBLEM_500,
    ScriptedNws,
    forecast_script,
    recorded,
)

BASE = "https://nws.test"


class Sleeps:
    """Records the delays the client asked for instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def client(script: ScriptedNws, sleeps: Sleeps, **kwargs: int) -> NwsClient:
    """An NWS client on the script, never sleeping for real."""
    return NwsClient(
        BASE, "test-agent (ops@example.com)", transport=script.transport(), sleep=sleeps, **kwargs
    )


async def test_sends_user_agent_and_geo_json_accept() -> None:
    script = ScriptedNws().on("/alerts/active", recorded(ALERTS_EMPTY))
    nws = client(script, Sleeps())
    await nws.active_alerts("CA")
    request = script.requests[0]
    assert request.headers["user-agent"] == "test-agent (ops@example.com)"
    assert request.headers["accept"] == "application/geo+json"
    assert str(request.url) == f"{BASE}/alerts/active?area=CA"
    await nws.aclose()


async def test_429_then_success_honours_retry_after() -> None:
    script = ScriptedNws().on(
        "/alerts/active",
        httpx2.Response(429, headers={"retry-after": "2"}),
        recorded(ALERTS_EMPTY),
    )
    sleeps = Sleeps()
    body = await client(script, sleeps).active_alerts("CA")
    assert body["features"] == []
    assert sleeps.delays == [2.0]


async def test_retry_after_is_capped_and_backoff_doubles() -> None:
    script = ScriptedNws().on(
        "/alerts/active",
        httpx2.Response(503, headers={"retry-after": "3600"}),
        httpx2.Response(502),
        httpx2.Response(500, headers={"retry-after": "soon"}),
        recorded(ALERTS_EMPTY),
    )
    sleeps = Sleeps()
    await client(script, sleeps, attempts=4).active_alerts("CA")
    assert sleeps.delays == [5.0, 1.0, 2.0]


async def test_persistent_500_is_a_clear_error_after_bounded_attempts() -> None:
    script = ScriptedNws().on("/alerts/active", recorded(PROBLEM_500, 500))
    sleeps = Sleeps()
    with pytest.raises(NwsError, match=r"having problems \(HTTP 500: An unexpected problem"):
        await client(script, sleeps).active_alerts("CA")
    assert len(script.requests) == 3
    assert len(sleeps.delays) == 2


async def test_persistent_429_says_rate_limited() -> None:
    script = ScriptedNws().on("/alerts/active", httpx2.Response(429))
    with pytest.raises(NwsError, match="rate limiting"):
        await client(script, Sleeps()).active_alerts("CA")


async def test_timeout_is_a_clear_error() -> None:
    script = ScriptedNws().on("/alerts/active", httpx2.ReadTimeout("slow"))
    with pytest.raises(NwsError, match="did not answer in time"):
        await client(script, Sleeps()).active_alerts("CA")


async def test_connection_failure_then_success() -> None:
    script = ScriptedNws().on(
        "/alerts/active", httpx2.ConnectError("refused"), recorded(ALERTS_EMPTY)
    )
    assert (await client(script, Sleeps()).active_alerts("CA"))["features"] == []


async def test_unreachable_is_a_clear_error() -> None:
    script = ScriptedNws().on("/alerts/active", httpx2.ConnectError("refused"))
    with pytest.raises(NwsError, match=r"could not be reached \(ConnectError\)"):
        await client(script, Sleeps()).active_alerts("CA")


async def test_malformed_json_is_a_clear_error() -> None:
    script = ScriptedNws().on("/alerts/active", httpx2.Response(200, text="{not json"))
    with pytest.raises(NwsError, match="not valid JSON"):
        await client(script, Sleeps()).active_alerts("CA")


async def test_client_error_quotes_problem_detail() -> None:
    script = ScriptedNws().on(
        "/alerts/active", httpx2.Response(400, json={"title": "Bad", "detail": "area is invalid"})
    )
    with pytest.raises(NwsError, match=r"refused the request \(HTTP 400: area is invalid\)"):
        await client(script, Sleeps()).active_alerts("ZZ")


async def test_error_without_problem_body_uses_reason() -> None:
    script = ScriptedNws().on("/alerts/active", httpx2.Response(403, text="<html>"))
    with pytest.raises(NwsError, match=r"HTTP 403: Forbidden"):
        await client(script, Sleeps()).active_alerts("CA")


async def test_point_404_invalid_point_is_outside_coverage() -> None:
    script = ScriptedNws().on("/points/25.048,-77.3554", recorded(POINT_404, 404))
    with pytest.raises(OutsideCoverageError, match="outside the US National Weather Service area"):
        await client(script, Sleeps()).forecast(25.048, -77.3554)


async def test_other_point_404_is_not_called_outside_coverage() -> None:
    script = ScriptedNws().on("/points/40,-100", httpx2.Response(404, json={"title": "gone"}))
    with pytest.raises(NwsError, match="refused the request") as caught:
        await client(script, Sleeps()).point(40, -100)
    assert not isinstance(caught.value, OutsideCoverageError)


async def test_repeated_forecast_costs_one_request_and_follows_link_on_our_base() -> None:
    script = forecast_script()
    nws = client(script, Sleeps())
    await nws.forecast(33.8, -117.882)
    await nws.forecast(33.80001, -117.88201)  # same grid cell after rounding to 4 places
    assert script.paths() == ["/points/33.8,-117.882", FORECAST_PATH, FORECAST_PATH]
    assert all(r.url.host == "nws.test" for r in script.requests)


async def test_points_cache_is_bounded() -> None:
    script = ScriptedNws()
    for lon in (1, 2, 3):
        script.on(f"/points/40,{lon}", recorded(POINT_SGX))
    nws = client(script, Sleeps(), points_cache_size=2)
    for lon in (1, 2, 1, 3, 1, 2):
        await nws.point(40, lon)
    assert script.paths() == ["/points/40,1", "/points/40,2", "/points/40,3", "/points/40,2"]


@pytest.mark.parametrize(
    "point_body",
    [
        pytest.param({"properties": {"forecast": None}}, id="null-forecast-link"),
        pytest.param({"properties": None}, id="null-properties"),
        pytest.param([], id="not-an-object"),
    ],
)
async def test_point_without_forecast_link_is_a_clear_error(point_body: object) -> None:
    script = ScriptedNws().on("/points/40,-100", httpx2.Response(200, json=point_body))
    with pytest.raises(NwsError, match=r"has no forecast for 40\.0000, -100\.0000"):
        await client(script, Sleeps()).forecast(40, -100)


async def test_point_without_forecast_link_is_not_cached() -> None:
    script = ScriptedNws().on("/points/40,-100", httpx2.Response(200, json={"properties": {}}))
    nws = client(script, Sleeps())
    for _ in range(2):
        with pytest.raises(NwsError, match="has no forecast"):
            await nws.forecast(40, -100)
    assert script.paths() == ["/points/40,-100", "/points/40,-100"]
