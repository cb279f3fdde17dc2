"""The benchmark's pure helpers (the benchmark itself never runs in the test suite)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest

from tests.support.processes import ROOT


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """bench/weather_auth.py, imported by path (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("weather_auth", ROOT / "bench/weather_auth.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_cpu_seconds_from_stat_handles_odd_process_names(bench: ModuleType) -> None:
    stat = "42 (python) weird) S 1 42 42 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 1 0 100"
    assert bench.cpu_seconds_from_stat(stat, 100) == pytest.approx(3.0)


def test_summarise_takes_medians_of_per_round_ratios(bench: ModuleType) -> None:
    figures = [
        ((100, 0.2), (95, 0.2), (60, 0.3), (99, 0.2)),
        ((200, 0.4), (180, 0.38), (100, 0.3), (196, 0.4)),
        ((100, 0.2), (100, 0.21), (70, 0.2), (97, 0.2)),
    ]
    rounds = [
        [
            bench.Sample(mode, calls, 1.0, cpu)
            for mode, (calls, cpu) in zip(bench.MODES, row, strict=True)
        ]
        for row in figures
    ]
    summary = bench.summarise(rounds)
    assert summary["off"] == (100, 1.0, 0.0)
    rate, ratio, added = summary["cached"]
    assert (rate, ratio) == (100, 0.95)
    assert added == pytest.approx(1000 * 0.2 / 95 - 2.0)  # ms per call, median round
    assert summary["nocache"][1] == 0.6
    assert summary["jwt"][1] == 0.98


async def test_auth_path_measurement_runs(bench: ModuleType) -> None:
    figures = await bench.auth_path_cpu_us(50)
    assert set(figures) == {"opaque (cached)", "JWT"}
    assert all(0 < value < 10_000 for value in figures.values())
