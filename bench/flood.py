"""Legitimate /token calls during a registration and sign-in flood, measured side by side.

Two real oauth.py processes on loopback: `limited` with the default flood limits (20
registrations and 60 authorization-page requests per minute per source, 1,000 pending sign-ins,
10,000 unused registrations) and `unlimited` with those limits lifted. A legitimate client of
each refreshes its tokens one call after another (the refresh grant writes to the database like
every grant) while, in a separate process, flooders hammer POST /register and GET /authorize
with valid requests as fast as the server answers. Round by round, in rotated order:

  quiet      the legitimate client alone
  flood      the same, with the flood running

Prints per-mode medians of the /token latency (p50, p90), their ratio to `quiet` on the same
server, the flood's requests per second and how many were refused, and the rows the flood left
in the database. Usage: `uv run python bench/flood.py` (`--rounds` 5, `--seconds` 3,
`--flooders` 8 by default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test helpers that start oauth.py and sign in

import httpx2  # noqa: E402

from tests.support.flows import Flow, LiveAuth, live_auth  # noqa: E402
from tests.support.oauth_server import OAuthServer, run_oauth_server  # noqa: E402

RESOURCE = "http://127.0.0.1:8000/mcp"
LIMITED: dict[str, str] = {  # the defaults, spelled out (the test helpers raise them)
    "OAUTH_REGISTER_RATE": "20/60",
    "OAUTH_AUTHORIZE_RATE": "60/60",
    "OAUTH_LOGIN_FAILURES_PER_ACCOUNT": "5/300",
    "OAUTH_LOGIN_FAILURES_PER_SOURCE": "20/300",
}
UNLIMITED: dict[str, str] = {
    "OAUTH_REGISTER_RATE": "1000000/1",
    "OAUTH_AUTHORIZE_RATE": "1000000/1",
    "OAUTH_MAX_PENDING": "100000000",
    "OAUTH_MAX_UNUSED_CLIENTS": "100000000",
}


@dataclass
class Legitimate:
    """A signed-in client of one server, refreshing its tokens."""

    auth: LiveAuth
    flow: Flow
    refresh_token: str

    async def call(self) -> float:
        """One refresh grant; its latency in seconds (the new refresh token is kept)."""
        start = time.perf_counter()
        response = await self.auth.refresh(self.flow, self.refresh_token)
        elapsed = time.perf_counter() - start
        if response.status_code != 200:
            raise RuntimeError(f"/token answered {response.status_code}: {response.text}")
        self.refresh_token = response.json()["refresh_token"]
        return elapsed


@dataclass
class Sample:
    """One mode of one round: /token latencies, what the flood got, the server's CPU."""

    latencies: list[float]
    flood: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0
    cpu: float = 0.0  # server CPU seconds during the measurement

    def p(self, q: int) -> float:
        """The q-th percentile latency in milliseconds."""
        if len(self.latencies) < 2:
            return 1000 * (self.latencies[0] if self.latencies else 0.0)
        return 1000 * statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1]


async def _flood_worker(
    issuer: str, client_id: str, stop_at: float, interval: float, seen: Counter[int]
) -> None:
    """Register and open the authorization page in turn, one request every `interval` seconds
    (0: as fast as answers come)."""
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": "http://127.0.0.1:9/callback",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "resource": RESOURCE,
    }
    body = {"redirect_uris": ["http://127.0.0.1:9/callback"], "client_name": "flood"}
    next_at, turn = time.monotonic(), 0
    async with httpx2.AsyncClient(timeout=30) as http:
        while (now := time.monotonic()) < stop_at:
            if next_at > now:
                await asyncio.sleep(next_at - now)
            next_at = max(next_at + interval, time.monotonic())  # late: no catch-up burst
            turn += 1
            if turn % 2:
                answer = await http.get(f"{issuer}/authorize", params=query)
            else:
                answer = await http.post(f"{issuer}/register", json=body)
            seen[answer.status_code] += 1


def _flood(issuer: str, client_id: str, seconds: float, args: argparse.Namespace, out: Any) -> None:
    """Process entry: run the flooders for `seconds`, then report the status counts."""
    interval = args.flooders / args.flood_rate if args.flood_rate else 0.0

    async def run() -> Counter[int]:
        seen: Counter[int] = Counter()
        stop_at = time.monotonic() + seconds
        await asyncio.gather(
            *(
                _flood_worker(issuer, client_id, stop_at, interval, seen)
                for _ in range(args.flooders)
            )
        )
        return seen

    out.put(dict(asyncio.run(run())))


async def measure(legit: Legitimate, seconds: float) -> list[float]:
    """Sequential /token calls for `seconds`."""
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        latencies.append(await legit.call())
    return latencies


def server_cpu(server: OAuthServer) -> float:
    """CPU seconds the server process has used so far (Linux /proc)."""
    stat = Path(f"/proc/{server.program.process.pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_mode(legit: Legitimate, mode: str, args: argparse.Namespace) -> Sample:
    """Measure one mode (with the server's CPU time)."""
    before = server_cpu(legit.auth.oauth)
    sample = await _one_mode(legit, mode, args)
    sample.cpu = server_cpu(legit.auth.oauth) - before
    return sample


async def _one_mode(legit: Legitimate, mode: str, args: argparse.Namespace) -> Sample:
    """Measure one mode; for `flood`, with the flooder process running throughout."""
    if mode == "quiet":
        return Sample(await measure(legit, args.seconds), seconds=args.seconds)
    queue: multiprocessing.Queue[dict[int, int]] = multiprocessing.Queue()
    flood_seconds = args.seconds + 1.0
    process = multiprocessing.Process(
        target=_flood,
        args=(legit.auth.oauth.issuer, legit.flow.client["client_id"], flood_seconds, args,
              queue),
    )  # fmt: skip
    process.start()
    await asyncio.sleep(0.5)  # let the flood build up
    latencies = await measure(legit, args.seconds)
    counts = await asyncio.to_thread(queue.get, True, 60)
    await asyncio.to_thread(process.join, 30)
    return Sample(latencies, Counter(counts), flood_seconds)


def rows(server: OAuthServer) -> tuple[int, int]:
    """(clients, pending sign-ins) in the server's database."""
    with sqlite3.connect(server.data_dir / "oauth.sqlite3") as db:
        clients = db.execute("SELECT count(*) FROM clients").fetchone()[0]
        pending = db.execute("SELECT count(*) FROM pending_authorizations").fetchone()[0]
    return int(clients), int(pending)


@contextlib.contextmanager
def servers(tmp: Path) -> Iterator[dict[str, OAuthServer]]:
    """The two oauth.py processes."""
    for name in ("limited", "unlimited"):
        (tmp / name).mkdir(mode=0o700)
    with (
        run_oauth_server(tmp / "limited", extra_env=LIMITED) as limited,
        run_oauth_server(tmp / "unlimited", extra_env=UNLIMITED) as unlimited,
    ):
        yield {"limited": limited, "unlimited": unlimited}


async def run(found: dict[str, OAuthServer], args: argparse.Namespace) -> None:
    """Sign in once per server, then the rounds; print the summary."""
    async with contextlib.AsyncExitStack() as stack:
        legit: dict[str, Legitimate] = {}
        for name, oauth in found.items():
            auth = await stack.enter_async_context(live_auth(oauth, RESOURCE))
            flow, tokens = await auth.tokens(client_name=f"legitimate ({name})")
            legit[name] = Legitimate(auth, flow, tokens["refresh_token"])
        modes = [(server, mode) for server in found for mode in ("quiet", "flood")]
        results: dict[tuple[str, str], list[Sample]] = {key: [] for key in modes}
        for index in range(args.rounds):
            order = modes[index % len(modes) :] + modes[: index % len(modes)]
            for server, mode in order:
                sample = await one_mode(legit[server], mode, args)
                results[(server, mode)].append(sample)
                print(
                    f"round {index + 1} {server:9} {mode:5}: {len(sample.latencies):4} calls, "
                    f"p50 {sample.p(50):6.1f} ms, p90 {sample.p(90):6.1f} ms",
                    flush=True,
                )
    report(results, found)


def report(results: dict[tuple[str, str], list[Sample]], found: dict[str, OAuthServer]) -> None:
    """Medians per mode, ratios to the same server's quiet mode, and the flood's outcome."""
    print(
        "\nserver     mode   /token p50   p90     p50 vs quiet  flood req/s  refused  "
        "server CPU  rows left"
    )
    for server in found:
        quiet_p50 = statistics.median(s.p(50) for s in results[(server, "quiet")])
        clients, pending = rows(found[server])
        for mode in ("quiet", "flood"):
            samples = results[(server, mode)]
            p50 = statistics.median(s.p(50) for s in samples)
            p90 = statistics.median(s.p(90) for s in samples)
            total: Counter[int] = sum((s.flood for s in samples), Counter())
            seconds = sum(s.seconds for s in samples)
            sent = sum(total.values())
            refused = total[429] + total[503]
            flood = f"{sent / seconds:8.0f}    {refused / max(sent, 1):6.0%}" if sent else " " * 19
            busy = sum(s.cpu for s in samples) / sum(s.seconds or 1.0 for s in samples)
            left = f"{clients} clients, {pending} pending" if mode == "flood" else ""
            print(
                f"{server:9}  {mode:5}  {p50:7.1f} ms {p90:6.1f} ms  {p50 / quiet_p50:6.2f}x"
                f"      {flood}   {busy:7.0%}    {left}"
            )


def main(argv: list[str]) -> int:
    """Parse flags, start both servers, run the rounds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds (5)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per mode (3)")
    parser.add_argument("--flooders", type=int, default=8, help="concurrent flooders (8)")
    parser.add_argument(
        "--flood-rate",
        type=float,
        default=200.0,
        help="requests per second the flood offers, all flooders together; 0: as fast as "
        "answers come (200)",
    )
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="secure-mcp-flood-") as tmp,
        servers(Path(tmp)) as found,
    ):
        asyncio.run(run(found, args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
