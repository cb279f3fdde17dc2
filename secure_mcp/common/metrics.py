"""Prometheus metrics for both servers: requests by endpoint and status class, latency, and each
program's own counters, served at `GET /metrics` (off by default: `--metrics`).

Every app has its own `CollectorRegistry` (never the library's global one), so tests and several
apps in one process never share or collide on a metric. With several worker processes
(weather.py `--workers`), prometheus-client's multiprocess mode keeps each worker's values in
files of a private folder (`PROMETHEUS_MULTIPROC_DIR`, set by the parent before the workers
start) and `/metrics` in any worker answers the sum over all of them.

`/metrics` has no authentication: it is off unless asked for, answers only for the server's own
Host names (DNS rebinding) and never from a browser of another origin (weather.py); where the
server is reachable by others, keep `/metrics` away from them (a reverse proxy rule or a
firewall). It shows request counts and latencies, never a token, client secret or user name.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METRICS_PATH = "/metrics"
OTHER = "other"  # every path that is not an endpoint: the label set stays bounded


class Metrics:
    """One app's registry: HTTP requests and latency per endpoint, plus counters of its own."""

    def __init__(
        self,
        namespace: str,
        endpoints: Iterable[str],
        multiprocess_dir: Path | None = None,
        *,
        per_worker: bool = False,
    ) -> None:
        self.namespace = namespace
        self.endpoints = frozenset(endpoints) | {METRICS_PATH}
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        self.requests = self.counter(
            "http_requests", "HTTP requests by endpoint and status class", ("endpoint", "status")
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from the request to the end of the response, by endpoint",
            ("endpoint",),
            namespace=namespace,
            registry=self.registry,
        )
        # which worker process answered (label: its pid), for servers with several workers
        self.worker_requests = (
            self.counter("worker_requests", "HTTP requests by worker process id", ("worker",))
            if per_worker
            else None
        )

    def counter(self, name: str, documentation: str, labels: Iterable[str] = ()) -> Counter:
        """A counter `<namespace>_<name>_total` in this app's registry."""
        return Counter(
            name, documentation, tuple(labels), namespace=self.namespace, registry=self.registry
        )

    def endpoint(self, path: str) -> str:
        """The endpoint label of a request path: the path itself when known, else `other`."""
        return path if path in self.endpoints else OTHER

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format (summed over workers in multiprocess mode)."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    async def handle(self, request: Request) -> Response:
        """GET /metrics."""
        return Response(
            self.exposition(),
            headers={"content-type": CONTENT_TYPE_LATEST, "cache-control": "no-store"},
        )


class MetricsMiddleware:
    """Pure ASGI: counts every HTTP request by endpoint and status class, and times it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # an app that fails before answering is a server error

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            endpoint = self.metrics.endpoint(scope["path"])
            self.metrics.requests.labels(endpoint, f"{status // 100}xx").inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
            if self.metrics.worker_requests is not None:
                self.metrics.worker_requests.labels(str(os.getpid())).inc()
