"""weather.py with several worker processes (`--workers N`): uvicorn's supervisor, our guards.

MCP is served statelessly, so any worker can answer any request: clients need no sticky
sessions. Each worker builds its own app from the same settings (its own introspection cache,
NWS client, slow-client guards and connection caps), on one listening socket the parent binds.
uvicorn sends the app factory and the protocol to the workers by pickling them, so both are
module-level callables bound to picklable settings (`functools.partial`), not closures.
With `--metrics`, the parent gives the workers a private folder for prometheus-client's
multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`), so `/metrics` in any worker shows them all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import uvicorn
from uvicorn.supervisors import Multiprocess

from secure_mcp.common.http_guard import uvicorn_options
from secure_mcp.weather.settings import WeatherSettings

if TYPE_CHECKING:
    from starlette.applications import Starlette

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# seconds a worker may take to answer uvicorn's health check: a new worker imports the whole
# server (mcp, pydantic, ...) before it can answer, several seconds on a busy machine
HEALTHCHECK_TIMEOUT = 60


def worker_app(settings: WeatherSettings) -> Starlette:
    """The app of one worker process (uvicorn calls this in each worker).

    Imported here, not at the top: unpickling this function in a new worker must be quick, for
    the worker answers uvicorn's health checks only once its arguments are unpickled.
    """
    from secure_mcp.weather.app import build_app

    return build_app(settings)


@contextlib.contextmanager
def metrics_folder(settings: WeatherSettings) -> Iterator[WeatherSettings]:
    """What the workers must share, in a private (0700) folder removed at the end: the
    metrics' values (with `--metrics`) and, without `--dpop-replay-db`, the DPoP proofs already
    seen (in memory each worker would accept a proof another worker has seen: RFC 9449 11.1)."""
    folder = Path(tempfile.mkdtemp(prefix="weather-workers-"))
    shared = settings
    if settings.dpop_replay_db is None:
        shared = dataclasses.replace(shared, dpop_replay_db=folder / "dpop-proofs.sqlite3")
    if settings.metrics:
        (folder / "metrics").mkdir(mode=0o700)
        # read by prometheus-client when a worker imports it: set before the workers start
        os.environ[MULTIPROC_ENV] = str(folder / "metrics")
        shared = dataclasses.replace(shared, metrics_dir=folder / "metrics")
    try:
        yield shared
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


class Supervisor(Protocol):
    """uvicorn's `Multiprocess` as far as `serve` uses it (tests pass their own)."""

    def run(self) -> None: ...


def worker_config(settings: WeatherSettings) -> uvicorn.Config:
    """uvicorn's configuration for the workers: everything in it survives pickling."""
    return uvicorn.Config(
        functools.partial(worker_app, settings),
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        access_log=False,  # a refused `?access_token=` URL must not land in a log line
        timeout_worker_healthcheck=HEALTHCHECK_TIMEOUT,
        **uvicorn_options(settings.connection_limits, workers=True),
    )


def serve(
    settings: WeatherSettings,
    supervisor: Callable[[uvicorn.Config, list[socket.socket]], Supervisor] = Multiprocess,
) -> None:
    """Bind the socket, start `settings.workers` workers, supervise them until Ctrl-C."""
    with metrics_folder(settings) as shared:
        config = worker_config(shared)
        supervisor(config, [config.bind_socket()]).run()
