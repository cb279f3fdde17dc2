"""Aggregated warnings: one line per kind per interval, with the count of the ones held back."""

from __future__ import annotations

import logging

import pytest

from secure_mcp.common.quiet_log import SummaryLog, Throttle, ThrottleFilter, throttle_warnings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_kind_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "quiet-test")
    clock = Clock()
    log = SummaryLog(logging.getLogger("quiet-test"), Throttle(60, clock))
    for _ in range(1000):
        log.event("hang-up", "client %s hung up", "10.0.0.1")
    log.event("timeout", "slow client %s", "10.0.0.2")
    clock.now = 60.0
    log.event("hang-up", "client %s hung up", "10.0.0.3")
    assert [r.getMessage() for r in caplog.records] == [
        "client 10.0.0.1 hung up",
        "slow client 10.0.0.2",
        "client 10.0.0.3 hung up (and 999 more like it in the last 60 s)",
    ]


def test_the_filter_thins_out_warnings_only() -> None:
    clock = Clock()
    noisy = ThrottleFilter(Throttle(10, clock))

    def record(level: int, msg: str) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", level, __file__, 1, msg, None, None)

    assert noisy.filter(record(logging.WARNING, "Invalid HTTP request received."))
    assert not noisy.filter(record(logging.WARNING, "Invalid HTTP request received."))
    assert noisy.filter(record(logging.WARNING, "Unsupported upgrade request."))
    assert noisy.filter(record(logging.ERROR, "Exception in ASGI application"))
    assert noisy.filter(record(logging.ERROR, "Exception in ASGI application"))
    clock.now = 10.0
    again = record(logging.WARNING, "Invalid HTTP request received.")
    assert noisy.filter(again)
    assert (
        again.getMessage() == "Invalid HTTP request received. (and 1 more like it in the last 10 s)"
    )


def test_the_filter_is_installed_once() -> None:
    logger = logging.getLogger("quiet-test-install")
    throttle_warnings(logger)
    throttle_warnings(logger)
    assert len([f for f in logger.filters if isinstance(f, ThrottleFilter)]) == 1
