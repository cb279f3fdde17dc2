"""Recorded NWS bodies (bundled with the weather server) and a scripted fake NWS transport."""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any

import httpx2

from secure_mcp.weather.replay import fixture

Step = httpx2.Response | Exception

ALERTS_FL = "alerts_active_area_FL_trimmed.json"
ALERTS_HI = "alerts_active_point_hilo_5features.json"
ALERTS_EMPTY = "alerts_active_empty.json"
POINT_SGX = "points_33.8_-117.882_SGX.json"
FORECAST_SGX = "gridpoints_SGX_38_66_forecast.json"
POINT_404 = "points_404_InvalidPoint.json"
PROBLEM_500 = "gridpoints_forecast_hourly_500_UnexpectedProblem.json"
FORECAST_PATH = "/gridpoints/SGX/38,66/forecast"


def recorded(
    name: str, status: int = 200, headers: dict[str, str] | None = None
) -> httpx2.Response:
    """A response carrying a recorded body."""
    kind = "application/geo+json" if status == 200 else "application/problem+json"
    return httpx2.Response(
        status, content=fixture(name), headers={"content-type": kind, **(headers or {})}
    )


def body(name: str) -> Any:
    """A recorded body, decoded."""
    return json.loads(fixture(name))


class ScriptedNws:
    """A fake NWS: each path answers the queued steps in order (the last one repeats)."""

    def __init__(self) -> None:
        self.steps: dict[str, deque[Step]] = defaultdict(deque)
        self.requests: list[httpx2.Request] = []

    def on(self, path: str, *steps: Step) -> ScriptedNws:
        """Queue answers for `path`."""
        self.steps[path].extend(steps)
        return self

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        """Answer from the script; unknown paths are a test failure (404)."""
        self.requests.append(request)
        queue = self.steps.get(request.url.path)
        if not queue:
            return httpx2.Response(404, json={"title": f"unscripted {request.url.path}"})
        step = queue.popleft() if len(queue) > 1 else queue[0]
        if isinstance(step, Exception):
            raise step
        return step

    def transport(self) -> httpx2.MockTransport:
        """An httpx2 transport answering from this script."""
        return httpx2.MockTransport(self.handle)

    def paths(self) -> list[str]:
        """The paths requested so far, in order."""
        return [r.url.path for r in self.requests]


def forecast_script(steps: Iterable[Step] = ()) -> ScriptedNws:
    """The Anaheim point and forecast, with `steps` answered first for the forecast."""
    script = ScriptedNws().on("/points/33.8,-117.882", recorded(POINT_SGX))
    return script.on(FORECAST_PATH, *steps, recorded(FORECAST_SGX))
