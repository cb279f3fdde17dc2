"""Prometheus metrics: a registry per app, bounded endpoint labels, status classes, latency."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from secure_mcp.common.metrics import Metrics, MetricsMiddleware
from tests.support.oauth_harness import running_harness
from tests.support.oauth_server import running_oauth_app


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def broken(request: Request) -> Response:
    raise RuntimeError("boom")


def tiny_app(metrics: Metrics) -> Starlette:
    """Two endpoints and /metrics behind the middleware."""
    routes = [
        Route("/ok", ok),
        Route("/broken", broken),
        Route("/metrics", metrics.handle),
    ]
    return Starlette(routes=routes, middleware=[Middleware(MetricsMiddleware, metrics=metrics)])


async def test_requests_are_counted_by_endpoint_and_status_class() -> None:
    metrics = Metrics("demo", ["/ok", "/broken"])
    app = tiny_app(metrics)
    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url="http://t") as http:
        for _ in range(3):
            assert (await http.get("/ok")).status_code == 200
        assert (await http.post("/ok")).status_code == 405
        for path in ("/nope", "/also/unknown?x=1", "/" + "a" * 300):
            assert (await http.get(path)).status_code == 404
        assert (await http.get("/broken")).status_code == 500
        answer = await http.get("/metrics")
    text = answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    assert answer.headers["cache-control"] == "no-store"
    assert 'demo_http_requests_total{endpoint="/ok",status="2xx"} 3.0' in text
    assert 'demo_http_requests_total{endpoint="/ok",status="4xx"} 1.0' in text
    assert 'demo_http_requests_total{endpoint="other",status="4xx"} 3.0' in text  # bounded
    assert 'demo_http_requests_total{endpoint="/broken",status="5xx"} 1.0' in text
    assert 'demo_http_request_duration_seconds_count{endpoint="/ok"} 4.0' in text
    assert "aaaa" not in text


async def test_two_apps_in_one_process_keep_their_own_counts() -> None:
    first, second = Metrics("demo", ["/ok"]), Metrics("demo", ["/ok"])
    for metrics, calls in ((first, 2), (second, 5)):
        transport = httpx2.ASGITransport(app=tiny_app(metrics))
        async with httpx2.AsyncClient(transport=transport, base_url="http://t") as http:
            for _ in range(calls):
                await http.get("/ok")
    assert b'endpoint="/ok",status="2xx"} 2.0' in first.exposition()
    assert b'endpoint="/ok",status="2xx"} 5.0' in second.exposition()


def test_multiprocess_exposition_reads_the_workers_folder(tmp_path: Path) -> None:
    metrics = Metrics("demo", [], multiprocess_dir=tmp_path)
    assert metrics.exposition() == b""  # no worker has written anything yet
    missing = Metrics("demo", [], multiprocess_dir=tmp_path / "gone")
    with pytest.raises(ValueError, match="not set or not a directory"):
        missing.exposition()


async def test_lifespan_passes_through() -> None:
    metrics = Metrics("demo", ["/ok"])
    app = tiny_app(metrics)
    async with app.router.lifespan_context(app):
        pass
    seen: list[str] = []

    async def inner(scope: object, receive: object, send: object) -> None:
        seen.append("called")

    await MetricsMiddleware(inner, metrics)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["called"]
    assert b"http_requests_total{" not in metrics.exposition()


async def test_oauth_metrics_are_off_by_default(tmp_path: Path) -> None:
    async with running_oauth_app(tmp_path) as (app, settings):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=settings.issuer) as http:
            assert (await http.get("/metrics")).status_code == 404


async def test_oauth_metrics_under_an_issuer_path(tmp_path: Path) -> None:
    issuer = "http://127.0.0.1:8003/tenant"
    async with running_oauth_app(tmp_path, issuer=issuer, metrics=True) as (app, _):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:8003"
        ) as http:
            await http.get("/tenant/.well-known/oauth-authorization-server")
            await http.get("/.well-known/oauth-authorization-server/tenant")
            await http.post("/tenant/token", data={"grant_type": "password"})
            text = (await http.get("/metrics")).text
    assert 'oauth_http_requests_total{endpoint="/tenant/token",status="4xx"} 1.0' in text
    wk = "/.well-known/oauth-authorization-server/tenant"
    assert f'oauth_http_requests_total{{endpoint="{wk}",status="2xx"}} 1.0' in text
    assert 'oauth_http_requests_total{endpoint="other",status="4xx"} 1.0' in text
    assert "oauth_tokens_issued_total{" not in text  # a refused grant issues nothing


async def test_oauth_counts_tokens_issued_by_grant(tmp_path: Path) -> None:
    async with running_harness(tmp_path, metrics=True) as oauth:
        flow = await oauth.new_flow()
        tokens = (await oauth.redeem(flow)).json()
        refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        answer = await oauth.token({**refresh, "client_id": flow.client["client_id"]})
        assert answer.status_code == 200
        assert (await oauth.redeem(flow)).status_code == 400  # a replay issues nothing
        text = (await oauth.http.get("/metrics")).text
    assert 'oauth_tokens_issued_total{grant_type="authorization_code"} 1.0' in text
    assert 'oauth_tokens_issued_total{grant_type="refresh_token"} 1.0' in text
    assert 'oauth_http_requests_total{endpoint="/token",status="4xx"} 1.0' in text
