"""DPoP replay caches: a proof is taken once; bounded in memory; shared between processes."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import anyio
import pytest

from secure_mcp.common.dpop_replay import (
    CLEANUP_EVERY,
    WINDOW,
    MemoryReplayCache,
    ReplayCacheFull,
    SqliteReplayCache,
)
from secure_mcp.common.private_files import UnsafePathError


async def test_memory_cache_takes_each_key_once_and_forgets_it_after_the_window() -> None:
    now = [1000.0]
    cache = MemoryReplayCache(size=2, clock=lambda: now[0])
    assert await cache.first_use("a", now[0] + WINDOW)
    assert not await cache.first_use("a", now[0] + WINDOW)
    assert await cache.first_use("b", now[0] + WINDOW)
    with pytest.raises(ReplayCacheFull):  # full of live entries: refuse, never evict one
        await cache.first_use("c", now[0] + WINDOW)
    now[0] += WINDOW + 1
    assert await cache.first_use("c", now[0] + WINDOW)
    assert await cache.first_use("a", now[0] + WINDOW)


async def test_sqlite_cache_takes_each_key_once_and_reuses_expired_rows(tmp_path: Path) -> None:
    now = [1000.0]
    cache = SqliteReplayCache(tmp_path / "dpop" / "proofs.sqlite3", clock=lambda: now[0])
    try:
        assert await cache.first_use("a", now[0] + 10)
        assert not await cache.first_use("a", now[0] + 10)
        now[0] += 11
        assert await cache.first_use("a", now[0] + 10)
        assert (cache.path.stat().st_mode & 0o777) == 0o600
        assert (cache.path.parent.stat().st_mode & 0o777) == 0o700
    finally:
        cache.close()


async def test_sqlite_cache_deletes_expired_rows_now_and_then(tmp_path: Path) -> None:
    now = [1000.0]
    cache = SqliteReplayCache(tmp_path / "proofs.sqlite3", clock=lambda: now[0])
    try:
        for i in range(CLEANUP_EVERY - 1):
            assert await cache.first_use(f"k{i}", now[0] + 1)
        now[0] += 2
        assert await cache.first_use("last", now[0] + 1)  # the thousandth insert cleans up
        rows = cache._db.execute("SELECT count(*) FROM proofs").fetchone()[0]
        assert rows == 1
    finally:
        cache.close()


def _claim(path: str, key: str, results: multiprocessing.Queue[bool]) -> None:
    async def main() -> bool:
        cache = SqliteReplayCache(Path(path))
        try:
            return await cache.first_use(key, 4e9)
        finally:
            cache.close()

    results.put(anyio.run(main))


def test_sqlite_cache_is_shared_by_processes(tmp_path: Path) -> None:
    path = tmp_path / "proofs.sqlite3"
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[bool] = context.Queue()
    workers = [context.Process(target=_claim, args=(str(path), "same", results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert sorted(results.get(timeout=5) for _ in workers) == [False, True]


def test_sqlite_cache_refuses_a_shared_folder(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # noqa: S103 - the unsafe folder under test
    with pytest.raises(UnsafePathError):
        SqliteReplayCache(shared / "proofs.sqlite3")
