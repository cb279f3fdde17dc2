"""weather.py's /metrics (introspections, cache hits, requests) and `--workers` (in process)."""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
from pathlib import Path

import httpx2
import pytest
import uvicorn
from uvicorn.server import ServerState

from secure_mcp.common.connection_limits import ConnectionLimits
from secure_mcp.common.http_guard import GuardedHttpProtocol, guarded_connection
from secure_mcp.weather.app import Seams, build_app, startup_banner
from secure_mcp.weather.settings import SettingsError, settings_from
from secure_mcp.weather.workers import MULTIPROC_ENV, metrics_folder, serve, worker_config
from tests.support.weather_app import (
    FakeIntrospectionServer,
    access_token,
    make_settings,
    post_mcp,
    serving,
)

ENV_CREDS = {"INTROSPECTION_CLIENT_ID": "rs", "INTROSPECTION_CLIENT_SECRET": "s3cret"}


def value(text: str, sample: str) -> float:
    """The value of one sample line of a Prometheus text exposition (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


async def test_metrics_count_introspections_cache_hits_and_requests(
    auth_server: FakeIntrospectionServer,
) -> None:
    seams = Seams(introspection_transport=auth_server.transport())
    app = build_app(make_settings(metrics=True), seams=seams)
    async with serving(app) as weather:
        token = auth_server.grant("tok")
        for _ in range(3):
            assert (await post_mcp(weather, token)).status_code == 200
        assert (await post_mcp(weather, access_token("unknown"))).status_code == 401
        auth_server.down = True
        assert (await post_mcp(weather, access_token("other"))).status_code == 503
        answer = await weather.get("/metrics")  # no token needed
        foreign = await weather.get("/metrics", headers={"origin": "http://evil.example"})
    assert answer.status_code == 200
    assert foreign.status_code == 403
    text = answer.text
    assert value(text, 'weather_introspections_total{outcome="active"}') == 1
    assert value(text, 'weather_introspections_total{outcome="inactive"}') == 1
    assert value(text, 'weather_introspections_total{outcome="unavailable"}') == 1
    assert value(text, "weather_introspection_cache_hits_total") == 2
    assert value(text, 'weather_http_requests_total{endpoint="/mcp",status="2xx"}') == 3
    assert value(text, 'weather_http_requests_total{endpoint="/mcp",status="4xx"}') == 1
    assert value(text, 'weather_http_requests_total{endpoint="/mcp",status="5xx"}') == 1
    assert value(text, f'weather_worker_requests_total{{worker="{os.getpid()}"}}') >= 5
    assert token not in text


async def test_metrics_are_off_by_default(weather: httpx2.AsyncClient) -> None:
    answer = await weather.get("/metrics")
    assert answer.status_code == 401  # an unknown path, closed like every other
    assert "weather_" not in answer.text


def test_flags_and_environment() -> None:
    settings = settings_from([], ENV_CREDS)
    assert (settings.metrics, settings.workers, settings.metrics_dir) == (False, 1, None)
    from_env = settings_from([], {**ENV_CREDS, "WEATHER_METRICS": "1", "WEATHER_WORKERS": "3"})
    assert (from_env.metrics, from_env.workers) == (True, 3)
    flags = settings_from(["--metrics", "--workers", "2"], {**ENV_CREDS, "WEATHER_WORKERS": "3"})
    assert (flags.metrics, flags.workers) == (True, 2)
    with pytest.raises(SettingsError, match="--workers must be at least 1"):
        settings_from(["--workers", "0"], ENV_CREDS)
    with pytest.raises(SettingsError, match="WEATHER_WORKERS must be a number"):
        settings_from([], {**ENV_CREDS, "WEATHER_WORKERS": "many"})


def test_banner_names_metrics_and_workers() -> None:
    assert "weather: metrics off" in startup_banner(make_settings())
    assert not any("worker" in line for line in startup_banner(make_settings()))
    both = startup_banner(make_settings(metrics=True, workers=2))
    assert "weather: metrics GET /metrics (no token: keep it private)" in both
    assert (
        "weather: 2 worker processes (each its own introspection cache; /metrics sums them all)"
        in both
    )
    alone = startup_banner(make_settings(workers=4))
    assert "weather: 4 worker processes (each its own introspection cache)" in alone


def test_what_the_workers_share_is_private_and_removed() -> None:
    with metrics_folder(make_settings()) as plain:
        assert MULTIPROC_ENV not in os.environ
        assert plain.metrics_dir is None
        assert plain.dpop_replay_db is not None  # one replay cache for every worker
        assert plain.dpop_replay_db.parent.stat().st_mode & 0o777 == 0o700
        folder = plain.dpop_replay_db.parent
    assert not folder.exists()
    with metrics_folder(make_settings(metrics=True, workers=2)) as shared:
        assert shared.metrics_dir is not None
        assert os.environ[MULTIPROC_ENV] == str(shared.metrics_dir)
        assert shared.metrics_dir.stat().st_mode & 0o777 == 0o700
        folder = shared.metrics_dir.parent
    assert MULTIPROC_ENV not in os.environ
    assert not folder.exists()
    own = Path("/srv/dpop/proofs.sqlite3")
    with metrics_folder(make_settings(dpop_replay_db=own)) as given:
        assert given.dpop_replay_db == own  # the operator's file is kept


def test_the_worker_configuration_survives_pickling() -> None:
    config = worker_config(make_settings(workers=2, metrics=True, port=0))
    copy = pickle.loads(pickle.dumps(config))  # noqa: S301 - what uvicorn sends a worker
    assert (copy.workers, copy.access_log, copy.proxy_headers) == (2, False, False)
    copy.load()  # in the worker: the app factory and our protocol
    assert copy.loaded


async def test_workers_share_one_protocol_class_per_limits() -> None:
    limits = ConnectionLimits(max_connections=7, max_connections_per_source=3)
    config = uvicorn.Config(app=build_app(make_settings()))
    config.load()
    state = ServerState()
    made = [
        guarded_connection(limits, config=config, server_state=state, app_state={})
        for _ in range(2)
    ]
    assert all(isinstance(protocol, GuardedHttpProtocol) for protocol in made)
    assert type(made[0]) is type(made[1])  # one registry: the caps hold across connections
    assert type(made[0]).registry.limits == limits
    await asyncio.sleep(0)


def test_serve_binds_once_and_hands_every_worker_the_same_socket(tmp_path: Path) -> None:
    started: list[tuple[uvicorn.Config, list[socket.socket]]] = []

    class Recorder:
        def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
            started.append((config, sockets))

        def run(self) -> None:
            assert os.environ[MULTIPROC_ENV]  # the workers inherit the metrics folder
            shared = started[0][0].app.args[0]  # the settings every worker builds its app from
            assert shared.dpop_replay_db is not None  # one DPoP replay cache for all

    serve(make_settings(workers=2, metrics=True, port=0), Recorder)
    ((config, sockets),) = started
    assert config.workers == 2
    assert len(sockets) == 1
    assert sockets[0].getsockname()[0] == "127.0.0.1"
    sockets[0].close()
    assert MULTIPROC_ENV not in os.environ
