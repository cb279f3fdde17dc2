"""Load: many concurrent authorized clients calling tools on the real oauth.py + weather.py.

Starts both programs on loopback (NWS replayed, nothing leaves the machine). Each client
registers, signs in headlessly on the real login and consent forms, redeems its code, then opens
its own MCP connection (`mcp.Client`, streamable HTTP, bearer token) and makes its tool calls
one after another; all clients run at once. Prints the error count, p50/p90/p99/max latency per
tool call, and calls/s over the whole run. Exits 1 on any error.

Usage: `uv run python bench/load.py` (50 clients x 100 calls), or a quick run:
`uv run python bench/load.py --clients 5 --calls 10`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test helpers that start the programs and sign in

import httpx2  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from tests.support.flows import Stack, live_auth, run_stack  # noqa: E402

TOOLS: dict[str, dict[str, Any]] = {
    "get_alerts": {"state": "HI"},
    "get_forecast": {"latitude": 33.8, "longitude": -117.882},
}


@dataclass
class Results:
    """Latencies of successful calls (seconds) and the errors seen."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def authorize(stack: Stack) -> str:
    """One client's access token: registration, headless sign-in and consent, code exchange."""
    async with live_auth(stack.oauth, stack.weather.url) as auth:
        _, tokens = await auth.tokens(client_name="load client")
    return str(tokens["access_token"])


async def client_run(url: str, token: str, tool: str, calls: int, results: Results) -> None:
    """One client: its own MCP connection, `calls` sequential tool calls."""
    headers = {"authorization": f"Bearer {token}"}
    try:
        async with (
            httpx2.AsyncClient(headers=headers, timeout=120) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            for _ in range(calls):
                start = time.perf_counter()
                result = await client.call_tool(tool, TOOLS[tool])
                elapsed = time.perf_counter() - start
                if result.is_error:
                    results.errors.append(str(result.content)[:200])
                else:
                    results.latencies.append(elapsed)
    except Exception as exc:  # a failed client is counted, not fatal
        results.errors.append(f"{type(exc).__name__}: {exc}"[:200])


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, in milliseconds."""
    if len(values) < 2:
        return 1000 * (values[0] if values else 0.0)
    return 1000 * statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def run(stack: Stack, clients: int, calls: int, tool: str) -> Results:
    """Authorize every client (concurrently), then let them all call at once."""
    start = time.perf_counter()
    tokens = await asyncio.gather(*(authorize(stack) for _ in range(clients)))
    print(f"authorized {clients} clients in {time.perf_counter() - start:.1f} s")
    results = Results()
    await client_run(stack.weather.url, tokens[0], tool, 1, Results())  # warm-up
    start = time.perf_counter()
    await asyncio.gather(*(client_run(stack.weather.url, t, tool, calls, results) for t in tokens))
    wall = time.perf_counter() - start
    done = len(results.latencies)
    print(f"{clients} clients x {calls} calls of {tool}: {done} ok, {len(results.errors)} errors")
    print(f"wall {wall:.1f} s, {done / wall:.0f} calls/s")
    print(
        "latency ms: "
        + ", ".join(f"p{q} {percentile(results.latencies, q):.0f}" for q in (50, 90, 99))
        + f", max {1000 * max(results.latencies, default=0.0):.0f}"
    )
    for error in results.errors[:5]:
        print(f"  error: {error}")
    return results


def main(argv: list[str]) -> int:
    """Parse flags, start the programs, run the load, report; 1 when any call failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    parser.add_argument("--calls", type=int, default=100, help="tool calls per client (100)")
    parser.add_argument("--tool", choices=sorted(TOOLS), default="get_alerts")
    parser.add_argument(
        "--cache-ttl", type=float, default=30.0, help="weather.py introspection cache TTL (30)"
    )
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="secure-mcp-load-") as tmp,
        run_stack(Path(tmp), cache_ttl=args.cache_ttl) as stack,
    ):
        results = asyncio.run(run(stack, args.clients, args.calls, args.tool))
    return 1 if results.errors or not results.latencies else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
