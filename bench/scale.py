"""Scale-out side by side: oauth.py on SQLite, on PostgreSQL, two on PostgreSQL; weather.py on
one and two workers. One run, the same load for each, ratios printed.

Token endpoint: `--chains` signed-in clients (8) each refresh their tokens one grant after
another for `--seconds` (every grant is a write: rotation, new access and refresh token), and
`--chains` resource-server callers introspect access tokens meanwhile in a second phase.
With two instances the clients alternate between them (client i talks to instance i % 2: a
round-robin balancer without its own CPU cost); both share one database and one issuer.
MCP: `--mcp-clients` authorized clients (50), each with its own token and connection, call
`get_alerts` one after another (NWS replayed) against weather.py with 1 and with 2 workers.

Load is generated with a minimal HTTP client (`rawhttp.py`) so the generator takes as little of
the two cores as possible. For each phase: requests/s, p50 and p99 latency, errors, the CPU
each server process used (from /proc/<pid>/stat, workers included) as a share of one core, and
the load generator's own. CPU ms/req is the servers' CPU per request: on a shared machine, what
one free core would serve is 1000 / (CPU ms/req) requests/s.
PostgreSQL is the tests' throwaway cluster (fsync off: measures the server, not the disk);
without PostgreSQL those rows are skipped. Prints the load average before and after.

Usage: `uv run python bench/scale.py` (`--seconds 5`, `--chains 8`, `--mcp-clients 50`;
`--only token|mcp|one|sqlite` for the token rows, the MCP rows, the one-instance token rows, or
the SQLite ones).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test helpers that start the programs and sign in

from bench.rawhttp import RawConnection, basic  # noqa: E402
from secure_mcp.common.resource_credentials import load_all  # noqa: E402
from tests.support.flows import live_auth  # noqa: E402
from tests.support.instances import TcpBalancer, run_instances  # noqa: E402
from tests.support.oauth_server import OAuthServer, run_oauth_server  # noqa: E402
from tests.support.postgres import Cluster, find_bin_dir, start_cluster  # noqa: E402
from tests.support.processes import free_port  # noqa: E402
from tests.support.weather_server import run_weather_server  # noqa: E402

FORM = "application/x-www-form-urlencoded"
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Phase:
    """One measured phase: latencies of successful requests, errors, wall time, server CPU."""

    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # process name -> share of one core
    generator: float = 0.0  # this process's own CPU (the load), as a share of one core

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        """The q-th percentile latency in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and its live children (uvicorn's workers)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent pid
            total += (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
    return total


async def drive(
    phase: Phase,
    workers: list[Callable[[], Awaitable[bool]]],
    seconds: float,
    pids: dict[str, int],
) -> Phase:
    """Run every worker's request in a loop for `seconds`; record latencies and server CPU."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    own = time.process_time()
    start = time.perf_counter()
    deadline = start + seconds

    async def loop(call: Callable[[], Awaitable[bool]]) -> None:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                ok = await call()
            except (OSError, asyncio.IncompleteReadError, ValueError):
                ok = False
            if ok:
                phase.latencies.append(time.perf_counter() - began)
            else:
                phase.errors += 1

    await asyncio.gather(*(loop(call) for call in workers))
    phase.seconds = time.perf_counter() - start
    phase.cpu = {n: (cpu_seconds(p) - before[n]) / phase.seconds for n, p in pids.items()}
    phase.generator = (time.process_time() - own) / phase.seconds
    return phase


@dataclass
class Chain:
    """A signed-in client whose refresh token rotates at every grant, on one instance."""

    client_id: str
    refresh_token: str
    access_token: str
    connection: RawConnection

    async def refresh(self) -> bool:
        form = {"grant_type": "refresh_token", "refresh_token": self.refresh_token}
        body = urlencode({**form, "client_id": self.client_id}).encode()
        status, answer = await self.connection.post("/token", body, FORM)
        if status != 200:
            return False
        self.refresh_token = json.loads(answer)["refresh_token"]
        return True


async def sign_in(
    server: OAuthServer, resource: str, count: int
) -> list[tuple[str, dict[str, Any]]]:
    """`count` clients registered, signed in and redeemed: (client_id, token response)."""
    async with live_auth(server, resource) as auth:
        made = []
        for _ in range(count):
            flow, tokens = await auth.tokens(client_name="scale bench")
            made.append((flow.client["client_id"], tokens))
    return made


async def token_phases(
    label: str,
    servers: list[OAuthServer],
    ports: list[int],
    args: argparse.Namespace,
    database_pid: int | None = None,
) -> list[Phase]:
    """Refresh grants, then introspections, with clients alternating over `ports`."""
    resource = "http://127.0.0.1:8000/mcp"
    signed = await sign_in(servers[0], resource, args.chains)
    chains = [
        Chain(
            client_id,
            tokens["refresh_token"],
            tokens["access_token"],
            RawConnection(ports[i % len(ports)]),
        )
        for i, (client_id, tokens) in enumerate(signed)
    ]
    pids = {f"oauth.py #{i + 1}": s.program.process.pid for i, s in enumerate(servers)}
    if database_pid is not None:
        pids["PostgreSQL"] = database_pid
    grants = await drive(
        Phase(f"{label}: refresh grants"), [c.refresh for c in chains], args.seconds, pids
    )
    cred = load_all(servers[0].data_dir)[resource]
    authorization = {"Authorization": basic(cred.client_id, cred.client_secret)}

    def introspect(chain: Chain) -> Callable[[], Awaitable[bool]]:
        body = urlencode({"token": chain.access_token}).encode()

        async def call() -> bool:
            status, answer = await chain.connection.post("/introspect", body, FORM, authorization)
            return status == 200 and json.loads(answer).get("active") is True

        return call

    fresh = await sign_in(servers[0], resource, 1)  # an access token still active
    for chain in chains:
        chain.access_token = fresh[0][1]["access_token"]
    looks = await drive(
        Phase(f"{label}: introspections"), [introspect(c) for c in chains], args.seconds, pids
    )
    for chain in chains:
        await chain.connection.close()
    return [grants, looks]


async def mcp_phase(
    label: str, port: int, tokens: list[str], pid: int, oauth_pid: int, seconds: float
) -> Phase:
    """`get_alerts` calls, one connection and token per client, all clients at once."""
    call = {
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "get_alerts", "arguments": {"state": "HI"}},
    }  # fmt: skip
    body = json.dumps(call).encode()

    def client(token: str) -> Callable[[], Awaitable[bool]]:
        connection = RawConnection(port)
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25",
        }

        async def one() -> bool:
            status, answer = await connection.post("/mcp", body, "application/json", headers)
            return status == 200 and b'"isError":false' in answer

        return one

    pids = {"weather.py": pid, "oauth.py": oauth_pid}
    return await drive(Phase(label), [client(t) for t in tokens], seconds, pids)


@contextlib.contextmanager
def postgres() -> Iterator[Cluster | None]:
    """The tests' throwaway PostgreSQL cluster, or None without PostgreSQL."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        yield None
        return
    cluster = start_cluster(bin_dir)
    try:
        yield cluster
    finally:
        cluster.stop()


async def token_rows(args: argparse.Namespace, tmp: Path, cluster: Cluster | None) -> list[Phase]:
    """The token endpoint on SQLite, PostgreSQL, and two instances on PostgreSQL."""
    phases: list[Phase] = []
    with run_oauth_server(tmp / "sqlite") as server:
        phases += await token_phases("1 instance, SQLite", [server], [server.port], args)
    if args.only == "sqlite":
        return phases
    if cluster is None:
        print("PostgreSQL not installed: its rows are skipped", flush=True)
        return phases
    postmaster = int((cluster.folder / "data" / "postmaster.pid").read_text().split()[0])
    with run_oauth_server(
        tmp / "pg1", extra_env={"OAUTH_DATABASE_URL": cluster.new_database()}
    ) as server:
        label = "1 instance, PostgreSQL"
        phases += await token_phases(label, [server], [server.port], args, postmaster)
    if args.only == "one":
        return phases
    with run_instances(tmp / "pg2", cluster.new_database()) as instances:
        async with TcpBalancer(instances.balancer_port, [s.port for s in instances.servers]):
            ports = [s.port for s in instances.servers]
            label = "2 instances, PostgreSQL"
            phases += await token_phases(label, instances.servers, ports, args, postmaster)
    return phases


async def mcp_rows(args: argparse.Namespace, tmp: Path) -> list[Phase]:
    """weather.py with 1 and with 2 workers behind one oauth.py."""
    ports = [free_port(), free_port()]
    resources = [f"http://127.0.0.1:{port}/mcp" for port in ports]
    phases: list[Phase] = []
    with run_oauth_server(tmp / "mcp", resources=resources) as oauth:
        for workers, port, resource in zip((1, 2), ports, resources, strict=True):
            signed = await sign_in(oauth, resource, args.mcp_clients)
            tokens = [str(t["access_token"]) for _, t in signed]
            flags = ("--workers", str(workers), "--introspection-cache-ttl", "60")
            (tmp / f"w{workers}").mkdir()
            with run_weather_server(
                tmp / f"w{workers}", auth_server=oauth.issuer, oauth_data_dir=oauth.data_dir,
                port=port, extra_args=flags,
            ) as weather:  # fmt: skip
                await asyncio.sleep(1.0)  # the workers finish starting
                label = f"weather.py, {workers} worker{'s' if workers > 1 else ''}"
                pid, oauth_pid = weather.program.process.pid, oauth.program.process.pid
                phases.append(await mcp_phase(label, port, tokens, pid, oauth_pid, args.seconds))
    return phases


def report(phases: list[Phase]) -> None:
    """The table, and the ratios to each group's first row."""
    print()
    heading = f"{'phase':<44} {'req/s':>6} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}"
    print(heading + " CPU ms/req  CPU of each process (1.0 = one core)")
    baselines: dict[str, float] = {}
    for phase in phases:
        kind = phase.name.split(": ")[-1] if ": " in phase.name else "tool calls"
        base = baselines.setdefault(kind, phase.rate or 1.0)
        shares = {**phase.cpu, "load generator": phase.generator}
        cpu = ", ".join(f"{name} {share:.2f}" for name, share in shares.items())
        per_request = 1000 * sum(phase.cpu.values()) / phase.rate if phase.rate else float("nan")
        print(
            f"{phase.name:<44} {phase.rate:>6.0f} {phase.rate / base:>5.2f}x {phase.p(50):>7.1f} "
            f"{phase.p(99):>7.1f} {phase.errors:>6} {per_request:>10.2f}  {cpu}"
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--mcp-clients", type=int, default=50)
    parser.add_argument(
        "--only",
        choices=["token", "mcp", "one", "sqlite"],
        help="run one half; one: the one-instance token rows; sqlite: its SQLite rows",
    )
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()}", flush=True)
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory() as folder, postgres() as cluster:
        tmp = Path(folder)
        for name in ("sqlite", "pg1", "pg2", "mcp"):
            (tmp / name).mkdir()
        if args.only != "mcp":
            phases += asyncio.run(token_rows(args, tmp, cluster))
        if args.only in (None, "mcp"):
            phases += asyncio.run(mcp_rows(args, tmp))
    report(phases)
    print(f"load average after: {os.getloadavg()}")
    return 1 if any(phase.errors for phase in phases) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
