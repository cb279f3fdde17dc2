"""RFC 8414 discovery of the authorization server: its metadata, fetched once and remembered."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import httpx2

from secure_mcp.common.well_known import AUTHORIZATION_SERVER, well_known_url
from secure_mcp.weather.errors import AuthServerUnavailableError

logger = logging.getLogger(__name__)


def metadata_url(issuer: str) -> str:
    """RFC 8414 section 3.1: the well-known suffix goes between the host and the issuer's path."""
    return well_known_url(issuer, AUTHORIZATION_SERVER)


class MissingEndpointError(AuthServerUnavailableError):
    """The metadata was fetched but lacks the member asked for."""


class Discovery:
    """The issuer's metadata: fetched lazily (weather.py may start while the AS is down), shared
    by concurrent first requests, remembered, and forgotten after a connection error so a moved
    or restarted server is rediscovered."""

    def __init__(self, issuer: str, http: httpx2.AsyncClient) -> None:
        self.issuer = issuer
        self._http = http
        self._metadata: Mapping[str, Any] | None = None
        self._lock = asyncio.Lock()

    async def metadata(self) -> Mapping[str, Any]:
        """The metadata document; AuthServerUnavailableError when it cannot be had."""
        async with self._lock:  # concurrent first requests share one metadata fetch
            if self._metadata is None:
                self._metadata = await self._fetch()
            return self._metadata

    def forget(self) -> None:
        """Fetch the metadata again next time."""
        self._metadata = None

    async def endpoint(self, name: str) -> str:
        """A URL member of the metadata (`introspection_endpoint`, `jwks_uri`), or unavailable."""
        value = (await self.metadata()).get(name)
        if not isinstance(value, str) or not value:
            logger.error("authorization server %s publishes no %s", self.issuer, name)
            raise MissingEndpointError
        return value

    async def _fetch(self) -> Mapping[str, Any]:
        """GET the metadata and check its issuer."""
        url = metadata_url(self.issuer)
        try:
            response = await self._http.get(url)
            meta = response.json() if response.status_code == 200 else None
        except (httpx2.HTTPError, ValueError) as exc:
            logger.warning("authorization server metadata unavailable at %s: %r", url, exc)
            raise AuthServerUnavailableError from exc
        if not isinstance(meta, dict) or meta.get("issuer") != self.issuer:
            # RFC 8414 section 3.3: the issuer in the metadata must be identical to ours.
            logger.error("no valid metadata for issuer %s at %s", self.issuer, url)
            raise AuthServerUnavailableError
        return meta
