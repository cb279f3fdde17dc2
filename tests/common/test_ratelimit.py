"""The shared token-bucket limiter: burst, refill, wait, bounded memory."""

from __future__ import annotations

import pytest

from secure_mcp.common.ratelimit import MemoryLimiter, Rate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_burst_is_allowed_then_the_wait_is_exact() -> None:
    clock = Clock()
    limiter = MemoryLimiter(rate=0.5, burst=3, clock=clock)
    assert [await limiter.hit("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await limiter.hit("a") == pytest.approx(2.0)
    assert await limiter.check("a") == pytest.approx(2.0)
    clock.now += 1.0
    assert await limiter.hit("a") == pytest.approx(1.0)  # half a unit back, nothing spent
    clock.now += 1.0
    assert await limiter.hit("a") == 0.0
    assert await limiter.check("a") == pytest.approx(2.0)


async def test_keys_are_independent_and_check_spends_nothing() -> None:
    limiter = MemoryLimiter(rate=1, burst=1, clock=Clock())
    assert await limiter.check("a") == 0.0
    assert await limiter.check("a") == 0.0
    assert await limiter.hit("a") == 0.0
    assert await limiter.hit("a") > 0
    assert await limiter.hit("b") == 0.0


async def test_refill_never_exceeds_the_burst() -> None:
    clock = Clock()
    limiter = MemoryLimiter(rate=10, burst=2, clock=clock)
    clock.now += 3600
    assert [await limiter.hit("a") for _ in range(3)][-1] > 0


async def test_memory_is_bounded_by_max_keys() -> None:
    limiter = MemoryLimiter(rate=1, burst=1, max_keys=100, clock=Clock())
    for n in range(10_000):
        await limiter.hit(f"k{n}")
    assert len(limiter) == 100


@pytest.mark.parametrize(("rate", "burst", "max_keys"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_nonsense_limits_are_refused(rate: float, burst: int, max_keys: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        MemoryLimiter(rate=rate, burst=burst, max_keys=max_keys)


@pytest.mark.parametrize(
    ("text", "rate"),
    [("20/60", Rate(20, 60)), (" 7/1.5 ", Rate(7, 1.5)), ("1/0.001", Rate(1, 0.001))],
)
def test_rates_are_written_n_per_seconds(text: str, rate: Rate) -> None:
    assert Rate.parse(text) == rate
    assert Rate.parse(str(rate)) == rate


@pytest.mark.parametrize("text", ["20", "x/60", "0/60", "5/0", "5/-1", "5/nan", "5/inf", "/"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - several messages
        Rate.parse(text)


async def test_a_rate_makes_a_limiter_with_that_burst_and_refill() -> None:
    clock = Clock()
    limiter = Rate(2, 10).limiter(clock=clock)
    assert [await limiter.hit("k") for _ in range(2)] == [0.0, 0.0]
    assert await limiter.hit("k") == pytest.approx(5.0)  # one unit back every 5 s
