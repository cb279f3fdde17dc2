"""Offline NWS: recorded api.weather.gov bodies served through an in-process transport."""

from __future__ import annotations

import json
import logging
import re
from functools import cache
from importlib import resources
from typing import Any

import httpx2

logger = logging.getLogger(__name__)

GEO_JSON = "application/geo+json"
PROBLEM_JSON = "application/problem+json"
ALERTS_BY_STATE = {
    "FL": "alerts_active_area_FL_trimmed.json",
    "HI": "alerts_active_point_hilo_5features.json",
}
POINT_PATH = re.compile(r"^/points/(-?[0-9.]+),(-?[0-9.]+)$")
FORECAST_PATH = "/gridpoints/SGX/38,66/forecast"
# Roughly the US, Alaska, Hawaii and the territories; outside it the NWS answers 404 InvalidPoint.
COVERED = ((17.0, 72.0, -180.0, -64.0), (13.0, 21.0, 144.0, 147.0), (-15.0, -14.0, -171.0, -169.0))
SUMMARY = (
    "NWS REPLAY MODE: serving recorded National Weather Service responses, not live data. "
    "Alerts: FL (Hurricane Milton, 2024) and HI (Hilo) recorded, other states none; "
    "every forecast inside the US is the recorded Anaheim, CA forecast."
)


@cache
def fixture(name: str) -> bytes:
    """The bytes of a bundled recording."""
    return (resources.files("secure_mcp.weather") / "replay" / name).read_bytes()


def fixture_json(name: str) -> Any:
    """A bundled recording, decoded."""
    return json.loads(fixture(name))


def _reply(status: int, name: str, content_type: str = GEO_JSON) -> httpx2.Response:
    """A response with a bundled body."""
    return httpx2.Response(status, content=fixture(name), headers={"content-type": content_type})


def _covered(lat: float, lon: float) -> bool:
    """True inside one of the rough NWS coverage boxes."""
    return any(s <= lat <= n and w <= lon <= e for s, n, w, e in COVERED)


def handle(request: httpx2.Request) -> httpx2.Response:
    """Answer one NWS request from the recordings (and say so in the log)."""
    path = request.url.path
    logger.info(
        "NWS replay: %s %s answered from a recording (nothing sent)",
        request.method,
        request.url.raw_path.decode("ascii", "replace"),
    )
    if path == "/alerts/active":
        area = request.url.params.get("area", "").upper()
        return _reply(200, ALERTS_BY_STATE.get(area, "alerts_active_empty.json"))
    point = POINT_PATH.match(path)
    if point:
        lat, lon = float(point.group(1)), float(point.group(2))
        if _covered(lat, lon):
            return _reply(200, "points_33.8_-117.882_SGX.json")
        return _reply(404, "points_404_InvalidPoint.json", PROBLEM_JSON)
    if path == FORECAST_PATH:
        return _reply(200, "gridpoints_SGX_38_66_forecast.json")
    return httpx2.Response(404, json={"title": "Not recorded", "status": 404})


def replay_transport() -> httpx2.MockTransport:
    """A transport that never leaves the process."""
    return httpx2.MockTransport(handle)


class _NotSent(logging.Filter):
    """Drops httpx2's `HTTP Request:` lines for requests the replay transport answered."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (len(args) > 1 and str(args[1]).startswith(self.base))


def hide_replayed_requests(base: str) -> None:
    """In replay mode no request reaches `base`: keep httpx2 from logging them as if sent."""
    httpx2_logger = logging.getLogger("httpx2")
    if not any(isinstance(f, _NotSent) and f.base == base for f in httpx2_logger.filters):
        httpx2_logger.addFilter(_NotSent(base))
