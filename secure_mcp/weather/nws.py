"""Client for the US National Weather Service API (api.weather.gov): retries, a grid cache."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx2

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
SERVICE = "The National Weather Service"
Sleep = Callable[[float], Awaitable[None]]


class NwsError(Exception):
    """An upstream failure, worded for the person (or model) calling the tool."""


class NwsStatusError(NwsError):
    """The NWS answered with an error status; `problem` is the RFC 7807 `type`, if any."""

    def __init__(self, message: str, status: int, problem: str) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem


class OutsideCoverageError(NwsError):
    """The point is outside the area the NWS forecasts for (404 InvalidPoint)."""


def _problem(response: httpx2.Response) -> tuple[str, str]:
    """(`type`, "HTTP status: detail") of an RFC 7807 problem body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, Mapping) else {}
    detail = body.get("detail") or body.get("title")
    text = detail if isinstance(detail, str) else response.reason_phrase
    kind = body.get("type")
    return (kind if isinstance(kind, str) else ""), f"HTTP {response.status_code}: {text[:200]}"


def _retry_after(response: httpx2.Response) -> float | None:
    """Seconds from a numeric `Retry-After` header, when present."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


class NwsClient:
    """One shared `httpx2.AsyncClient` to the NWS API, bounded retries, an LRU of `/points`."""

    def __init__(
        self,
        base: str,
        user_agent: str,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        attempts: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 5.0,
        points_cache_size: int = 512,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._base = base.rstrip("/")
        self._http = httpx2.AsyncClient(
            transport=transport,
            timeout=httpx2.Timeout(timeout, connect=5.0),
            headers={"User-Agent": user_agent, "Accept": "application/geo+json"},
            follow_redirects=False,
        )
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._max_retry_after = max_retry_after
        self._sleep = sleep
        self._points: OrderedDict[tuple[float, float], tuple[Any, str]] = OrderedDict()
        self._points_size = points_cache_size

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.aclose()

    def _url(self, path_or_url: str) -> str:
        """An upstream URL on our configured base: links in bodies keep only their path."""
        return self._base + urlsplit(path_or_url).path

    async def _send(self, url: str, params: Mapping[str, str] | None) -> httpx2.Response:
        """GET with bounded retries on 429/5xx and transport errors, honouring `Retry-After`."""
        for attempt in range(1, self._attempts + 1):
            last = attempt == self._attempts
            try:
                response = await self._http.get(url, params=params)
            except httpx2.TimeoutException as exc:
                if last:
                    raise NwsError(f"{SERVICE} did not answer in time; try again later.") from exc
                delay = self._backoff * 2 ** (attempt - 1)
            except httpx2.TransportError as exc:
                if last:
                    name = type(exc).__name__
                    raise NwsError(f"{SERVICE} could not be reached ({name}).") from exc
                delay = self._backoff * 2 ** (attempt - 1)
            else:
                if response.status_code not in RETRY_STATUSES or last:
                    return response
                hinted = _retry_after(response)
                delay = self._backoff * 2 ** (attempt - 1) if hinted is None else hinted
            logger.info("NWS request failed (attempt %d), retrying", attempt)
            await self._sleep(min(delay, self._max_retry_after))
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_json(self, path_or_url: str, params: Mapping[str, str] | None = None) -> Any:
        """The decoded JSON of a successful GET; every failure is an NwsError."""
        response = await self._send(self._url(path_or_url), params)
        if response.status_code == 429:
            raise NwsError(f"{SERVICE} is rate limiting requests; try again in a minute.")
        if response.status_code != 200:
            kind, summary = _problem(response)
            message = (
                f"{SERVICE} is having problems ({summary}); try again later."
                if response.status_code >= 500
                else f"{SERVICE} refused the request ({summary})."
            )
            raise NwsStatusError(message, response.status_code, kind)
        try:
            return response.json()
        except ValueError as exc:
            raise NwsError(f"{SERVICE} sent a response that is not valid JSON.") from exc

    async def active_alerts(self, state: str) -> Any:
        """`/alerts/active?area=XX`: the active alerts for a state or territory."""
        return await self.get_json("/alerts/active", {"area": state})

    async def point(self, lat: float, lon: float) -> tuple[Any, str]:
        """`/points/lat,lon` and its forecast link; cached only when the link is usable."""
        key = (round(lat, 4), round(lon, 4))
        if key in self._points:
            self._points.move_to_end(key)
            return self._points[key]
        try:
            body = await self.get_json(f"/points/{key[0]:g},{key[1]:g}")
        except NwsStatusError as exc:
            if exc.status == 404 and exc.problem.endswith("/InvalidPoint"):
                raise OutsideCoverageError(_outside(lat, lon)) from exc
            raise
        props = body.get("properties") if isinstance(body, Mapping) else None
        link = props.get("forecast") if isinstance(props, Mapping) else None
        if not isinstance(link, str) or not link:
            # Not cached: a malformed answer must not poison the location until a restart.
            raise NwsError(f"{SERVICE} has no forecast for {lat:.4f}, {lon:.4f}.")
        self._points[key] = (body, link)
        if len(self._points) > self._points_size:
            self._points.popitem(last=False)
        return body, link

    async def forecast(self, lat: float, lon: float) -> tuple[Any, Any]:
        """The `/points` body and the forecast it links to."""
        point, link = await self.point(lat, lon)
        return point, await self.get_json(link)


def _outside(lat: float, lon: float) -> str:
    """The message for a point the NWS does not cover."""
    return (
        f"{lat:.4f}, {lon:.4f} is outside the US National Weather Service area "
        "(forecasts cover the United States and its territories)."
    )
