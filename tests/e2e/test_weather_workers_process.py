"""The real weather.py with `--workers 2 --metrics` behind the real oauth.py: authorized clients
are served by both workers (no sticky sessions), and /metrics sums what every worker counted."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.flows import Stack, live_auth, run_stack

pytestmark = pytest.mark.process

WORKER = re.compile(r'weather_worker_requests_total\{worker="(\d+)"\} (\d+)\.0')


async def calls(url: str, token: str, count: int) -> int:
    """`count` get_alerts calls over one MCP connection; how many succeeded."""
    headers = {"authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        results = [await client.call_tool("get_alerts", {"state": "HI"}) for _ in range(count)]
    return sum(not result.is_error for result in results)


def parent_of(pid: int) -> int:
    """The parent process id of `pid` (/proc/<pid>/stat, field 4)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


async def worker_counts(stack: Stack) -> dict[int, int]:
    """Requests per worker pid, from /metrics (whichever worker answers sums them all)."""
    async with httpx2.AsyncClient() as http:
        text = (await http.get(f"{stack.weather.origin}/metrics")).text
    return {int(pid): int(count) for pid, count in WORKER.findall(text)}


async def test_two_workers_serve_authorized_clients(tmp_path: Path) -> None:
    args = ("--workers", "2", "--metrics")
    with run_stack(tmp_path, weather_args=args, cache_ttl=30) as stack:
        output = stack.weather.program.output()
        assert "weather: 2 worker processes (each its own introspection cache" in output
        async with live_auth(stack.oauth, stack.weather.url) as auth:
            _, tokens = await auth.tokens()
        served = 0
        for _ in range(10):  # new connections until both workers have answered
            rounds = await asyncio.gather(
                *(calls(stack.weather.url, tokens["access_token"], 3) for _ in range(6))
            )
            served += sum(rounds)
            if len(await worker_counts(stack)) == 2:
                break
        workers = await worker_counts(stack)
        parents = {parent_of(pid) for pid in workers}  # while they run
        async with httpx2.AsyncClient() as http:
            text = (await http.get(f"{stack.weather.origin}/metrics")).text
            refused = await http.get(
                f"{stack.weather.origin}/metrics", headers={"origin": "http://evil.example"}
            )
    assert refused.status_code == 403  # no browser of another origin reads it
    assert len(workers) == 2
    assert parents == {stack.weather.program.process.pid}  # weather.py's own workers
    assert served % 18 == 0
    assert served > 0
    posts = re.search(r'weather_http_requests_total\{endpoint="/mcp",status="2xx"\} (\d+)', text)
    assert posts is not None
    assert int(posts.group(1)) >= served  # every call, from both workers, in one answer
    active = re.search(r'weather_introspections_total\{outcome="active"\} (\d+)', text)
    hits = re.search(r"weather_introspection_cache_hits_total (\d+)", text)
    assert active is not None
    assert hits is not None
    assert 1 <= int(active.group(1)) <= 2 + 12  # one per worker, or a few concurrent firsts
    assert int(hits.group(1)) > 0
