"""Two authorization-server instances in process on one database URL, behind one HTTP client.

`Balancer` is an httpx2 transport that sends each request to the instance `use` names, or to
each in turn (`round_robin`), like a load balancer without sticky sessions; the client's
cookies are the browser's, whichever instance answers.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from tests.oauth.helpers import Harness
from tests.support.oauth_server import running_oauth_app


class Balancer(httpx2.AsyncBaseTransport):
    """Sends each request to `transports[use]`, or to the next one when `round_robin`."""

    def __init__(self, transports: list[httpx2.AsyncBaseTransport]) -> None:
        self.transports = transports
        self.use = 0
        self.round_robin = False
        self.served = [0] * len(transports)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        index = self.use
        if self.round_robin:
            self.use = (self.use + 1) % len(self.transports)
        self.served[index] += 1
        return await self.transports[index].handle_async_request(request)


@dataclass
class Pair:
    """Two instances: one browser-like client through the balancer, one direct client each."""

    harness: Harness  # through the balancer
    balancer: Balancer
    direct: list[httpx2.AsyncClient]

    def at(self, index: int) -> Harness:
        """The harness with every following request sent to instance `index`."""
        self.balancer.round_robin = False
        self.balancer.use = index
        return self.harness


@contextlib.asynccontextmanager
async def two_instances(tmp_path: Path, database_url: str, **overrides: Any) -> AsyncIterator[Pair]:
    """Two apps (data folders a/ and b/) on `database_url`, lifespans running."""
    async with (
        running_oauth_app(tmp_path / "a", database_url=database_url, **overrides) as (app_a, s),
        running_oauth_app(tmp_path / "b", database_url=database_url, **overrides) as (app_b, _),
    ):
        transports: list[httpx2.AsyncBaseTransport] = [
            httpx2.ASGITransport(app=app_a),
            httpx2.ASGITransport(app=app_b),
        ]
        balancer = Balancer(transports)
        async with contextlib.AsyncExitStack() as stack:
            http = await stack.enter_async_context(
                httpx2.AsyncClient(transport=balancer, base_url=s.issuer)
            )
            direct = [
                await stack.enter_async_context(
                    httpx2.AsyncClient(transport=transport, base_url=s.issuer)
                )
                for transport in transports
            ]
            yield Pair(Harness(app_a, s, http), balancer, direct)
