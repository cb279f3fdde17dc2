"""Several authorization-server instances on one database URL, in process or as processes.

In process: `Balancer` is an httpx2 transport that sends each request to the instance `use`
names, or to each in turn (`round_robin`), like a load balancer without sticky sessions; the
client's cookies are the browser's, whichever instance answers. As processes: `run_instances`
starts oauth.py several times at the same moment, and `TcpBalancer` spreads connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from tests.support.oauth_harness import Harness
from tests.support.oauth_server import (
    TEST_PASSWORD,
    TEST_USERNAME,
    OAuthServer,
    oauth_child_env,
    running_oauth_app,
)
from tests.support.processes import Program, free_port, start_program, wait_ready


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


class TcpBalancer:
    """A round-robin TCP load balancer on 127.0.0.1: each connection to the next backend.

    No stickiness: a client that opens a connection per request alternates between instances.
    Runs in the test's event loop (`async with TcpBalancer(port, backends)`).
    """

    def __init__(self, port: int, backends: list[int]) -> None:
        self.port = port
        self.backends = backends
        self.connections = [0] * len(backends)
        self._next = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> TcpBalancer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._open:  # ends every pipe, so no connection task is left behind
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index, self._next = self._next, (self._next + 1) % len(self.backends)
        self.connections[index] += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backends[index])
        except OSError:
            writer.close()
            return
        self._open.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._open.difference_update((writer, up_writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then close the other side."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


@dataclass(frozen=True)
class Instances:
    """oauth.py processes sharing one issuer (the balancer's URL) and one database."""

    issuer: str
    balancer_port: int
    servers: list[OAuthServer]

    def direct(self, index: int) -> str:
        """The base URL of instance `index` itself (its own port; the Host is allowed)."""
        return f"http://127.0.0.1:{self.servers[index].port}"


@contextlib.contextmanager
def run_instances(
    tmp_path: Path, database_url: str, *, count: int = 2, extra_env: Mapping[str, str] | None = None
) -> Iterator[Instances]:
    """Start `count` oauth.py at the same moment (no waiting between them), then wait for all.

    Each has its own port and data folder (`tmp_path/instance-N`); all have the issuer
    `http://127.0.0.1:<balancer port>` and `--database-url database_url`.
    """
    balancer_port = free_port()
    issuer = f"http://127.0.0.1:{balancer_port}"
    env = oauth_child_env(extra_env)
    started: list[tuple[Program, OAuthServer]] = []
    try:
        for index in range(count):
            port, folder = free_port(), tmp_path / f"instance-{index}"
            folder.mkdir()
            args = ["--host", "127.0.0.1", "--port", str(port), "--issuer", issuer,
                    "--data-dir", str(folder / "oauth-data"),
                    "--database-url", database_url]  # fmt: skip
            program = start_program("oauth.py", args, log_dir=folder, env=env)
            server = OAuthServer(
                issuer, port, folder / "oauth-data", TEST_USERNAME, TEST_PASSWORD, program
            )
            started.append((program, server))
        for program, server in started:
            wait_ready(program, f"http://127.0.0.1:{server.port}/health")
        yield Instances(issuer, balancer_port, [server for _, server in started])
    finally:
        for program, _ in started:
            program.stop()
