"""A misbehaving National Weather Service on loopback: weather.py runs with `--nws-base` at it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from secure_mcp.weather.replay import fixture
from tests.support.nws_fixtures import ALERTS_HI, FORECAST_PATH, FORECAST_SGX, POINT_SGX

Step = Callable[[], Awaitable[Response]]
POINT_PATH = "/points/33.8,-117.882"


def recorded(name: str, status: int = 200) -> Step:
    """Answer with a recorded NWS body."""

    async def step() -> Response:
        kind = "application/geo+json" if status == 200 else "application/problem+json"
        return Response(fixture(name), status_code=status, media_type=kind)

    return step


def raw(body: bytes, status: int = 200, media_type: str = "application/geo+json") -> Step:
    """Answer with these bytes."""

    async def step() -> Response:
        return Response(body, status_code=status, media_type=media_type)

    return step


def slow(seconds: float, then: Step) -> Step:
    """Wait, then answer as `then` does."""

    async def step() -> Response:
        await asyncio.sleep(seconds)
        return await then()

    return step


def hang(release: threading.Event) -> Step:
    """Never answer until `release` is set (weather.py's client times out first)."""

    async def step() -> Response:
        await asyncio.to_thread(release.wait)
        return Response(b"{}", media_type="application/geo+json")

    return step


class FakeNws:
    """Each path answers its queued steps in order; the last one repeats; unknown paths 404."""

    def __init__(self) -> None:
        self.steps: dict[str, deque[Step]] = defaultdict(deque)
        self.hits: list[str] = []
        self.app = Starlette(routes=[Route("/{path:path}", self._serve)])

    def on(self, path: str, *steps: Step) -> None:
        """Replace what `path` answers."""
        self.steps[path] = deque(steps)

    def healthy(self) -> None:
        """Answer like the real NWS (recorded bodies)."""
        self.on("/alerts/active", recorded(ALERTS_HI))
        self.on(POINT_PATH, recorded(POINT_SGX))
        self.on(FORECAST_PATH, recorded(FORECAST_SGX))

    async def _serve(self, request: Request) -> Response:
        path = request.url.path
        self.hits.append(path)
        queue = self.steps.get(path)
        if not queue:
            return Response(b'{"title": "Not Found"}', 404, media_type="application/problem+json")
        step = queue.popleft() if len(queue) > 1 else queue[0]
        return await step()


@contextlib.contextmanager
def serve(nws: FakeNws) -> Iterator[str]:
    """Serve `nws` with uvicorn on 127.0.0.1 (ephemeral port) in a thread; yield its base URL."""
    config = uvicorn.Config(nws.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-nws", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the fake NWS did not start")
            threading.Event().wait(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
