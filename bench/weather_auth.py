"""Cost of the weather server's authorization, measured side by side in one run.

Four real weather servers on loopback (NWS replayed, so nothing leaves the machine) and a stub
authorization server (RFC 8414 metadata, RFC 7662 introspection, a JWKS); the same tool call is
driven at each in turn, round by round:

  off      no authorization at all (the baseline)
  cached   opaque tokens, introspection result cached (30 s, never past exp)
  nocache  opaque tokens, introspection on every request (the common peer design)
  jwt      RFC 9068 JWT access tokens checked locally (ES256 against the cached JWKS)

Prints per-round figures and the medians: calls/s relative to `off`, and the server's CPU time
per call (from /proc) minus that of `off`. Then the cold path: the first call of a new token,
one caller, for introspection and for JWT (latency and server CPU per call). The load average
is printed at the start and the end: the machine may be shared. Usage:
`uv run python bench/weather_auth.py` (`--rounds` 21, `--seconds` 1.5, `--workers` 2,
`--cold` 20 by default). Linux only (reads /proc/<pid>/stat).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx2
from joserfc import jwt
from joserfc.jwk import ECKey

from secure_mcp.common import token_format

ROOT = Path(__file__).resolve().parents[1]
MODES = ("off", "cached", "nocache", "jwt")
COLD_MODES = ("cached", "jwt")
STUB_TOKENS = token_format.ACCESS_PREFIX + "bench"  # the start of every token the stub accepts
CREDENTIALS = {"INTROSPECTION_CLIENT_ID": "bench-rs", "INTROSPECTION_CLIENT_SECRET": "bench-secret"}
CALL = {"name": "get_alerts", "arguments": {"state": "CA"}}
PROTOCOL = "2025-11-25"


def jwt_token(key: ECKey, issuer: str, audience: str, name: object) -> str:
    """An RFC 9068 access token as oauth.py makes them, signed with the stub's key."""
    now = int(time.time())
    claims = {
        "iss": issuer, "aud": audience, "exp": now + 3600, "iat": now, "jti": f"{name}-{now}",
        "client_id": "bench", "sub": "bench", "scope": "weather:read",
    }  # fmt: skip
    return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": key.kid}, claims, key)


def bench_token(name: object) -> str:
    """A well-formed access token (prefix and checksum) that only the stub server accepts.

    One per caller, so concurrent callers never share an introspection request.
    """
    body = STUB_TOKENS.removeprefix(token_format.ACCESS_PREFIX) + str(name)
    return token_format.assemble(token_format.ACCESS_PREFIX, body.ljust(43, "x"))


@dataclass
class Sample:
    """One mode's figures for one round."""

    mode: str
    calls: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        """Tool calls per second."""
        return self.calls / self.seconds

    @property
    def cpu_ms_per_call(self) -> float:
        """Server CPU milliseconds per call."""
        return 1000 * self.cpu_seconds / max(self.calls, 1)


def cpu_seconds_from_stat(stat: str, ticks_per_second: int) -> float:
    """User + system CPU seconds from the text of /proc/<pid>/stat."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_second


def process_cpu(pid: int) -> float:
    """CPU seconds used so far by `pid`."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return cpu_seconds_from_stat(stat, os.sysconf("SC_CLK_TCK"))


def summarise(rounds: Sequence[Sequence[Sample]]) -> dict[str, tuple[float, float, float]]:
    """Per mode: (median calls/s, median ratio vs off, median added CPU ms per call vs off)."""
    result: dict[str, tuple[float, float, float]] = {}
    for mode in MODES:
        rates, ratios, added = [], [], []
        for samples in rounds:
            by_mode = {s.mode: s for s in samples}
            base, mine = by_mode["off"], by_mode[mode]
            rates.append(mine.rate)
            ratios.append(mine.rate / base.rate)
            added.append(mine.cpu_ms_per_call - base.cpu_ms_per_call)
        result[mode] = (
            statistics.median(rates),
            statistics.median(ratios),
            statistics.median(added),
        )
    return result


def free_port() -> int:
    """An ephemeral loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- child processes -------------------------------------------------------------------------


def serve_stub_as(port: int) -> None:
    """A stub authorization server: RFC 8414 metadata and an introspection endpoint."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    issuer = f"http://127.0.0.1:{port}"
    audiences: list[str] = os.environ["BENCH_AUDIENCES"].split()
    jwks = {"keys": [json.loads(os.environ["BENCH_PUBLIC_KEY"])]}

    async def metadata(_: Request) -> JSONResponse:
        return JSONResponse(
            {
                "issuer": issuer,
                "introspection_endpoint": f"{issuer}/introspect",
                "jwks_uri": f"{issuer}/jwks",
            }
        )

    async def keys(_: Request) -> JSONResponse:
        return JSONResponse(jwks)

    async def introspect(request: Request) -> JSONResponse:
        form = await request.form()
        token = str(form.get("token", ""))
        if not token.startswith(STUB_TOKENS) or not request.headers.get("authorization"):
            return JSONResponse({"active": False})
        now = int(time.time())
        claims = {"active": True, "aud": audiences, "scope": "weather:read", "iss": issuer}
        return JSONResponse({**claims, "client_id": "bench", "exp": now + 3600, "iat": now})

    routes = [
        Route("/.well-known/oauth-authorization-server", metadata),
        Route("/introspect", introspect, methods=["POST"]),
        Route("/jwks", keys),
    ]
    uvicorn.run(Starlette(routes=routes), host="127.0.0.1", port=port, log_level="warning")


def serve_weather(mode: str, argv: list[str]) -> None:
    """The real weather app built from weather.py's flags; `off` leaves authorization out."""
    import uvicorn

    from secure_mcp.weather.app import build_app
    from secure_mcp.weather.settings import settings_from

    settings = settings_from(argv, os.environ)
    app = build_app(settings, require_auth=mode != "off")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)


@contextlib.contextmanager
def child(args: list[str], env: dict[str, str], ready: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run this script with `args` until the block ends; wait until `ready` answers."""
    process = subprocess.Popen(
        [sys.executable, __file__, *args], cwd=ROOT, env={**os.environ, **env}
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx2.get(ready, timeout=1)
                break
            except httpx2.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{args} did not start") from None
                time.sleep(0.1)
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


# ---- load ------------------------------------------------------------------------------------


async def open_session(http: httpx2.AsyncClient, url: str) -> dict[str, str]:
    """Initialize (legacy handshake; the server is stateless) and return the headers to reuse."""
    body = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    }
    response = await http.post(url, json=body)
    response.raise_for_status()
    headers = {"mcp-protocol-version": PROTOCOL}
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    await http.post(url, json=note, headers=headers)
    return headers


async def worker(url: str, headers: dict[str, str], stop_at: float) -> int:
    """Call the tool in a loop until `stop_at`; return the number of successful calls."""
    done = 0
    base = {"accept": "application/json, text/event-stream", **headers}
    async with httpx2.AsyncClient(headers=base, timeout=30) as http:
        session = await open_session(http, url)
        while time.monotonic() < stop_at:
            body = {"jsonrpc": "2.0", "id": done + 1, "method": "tools/call", "params": CALL}
            response = await http.post(url, json=body, headers=session)
            if response.status_code != 200 or '"isError":true' in response.text:
                raise RuntimeError(f"call failed: {response.status_code} {response.text[:200]}")
            done += 1
    return done


async def burst(
    mode: str, url: str, pid: int, seconds: float, tokens: Sequence[str | None]
) -> Sample:
    """Drive one concurrent caller per token at one server for `seconds`."""
    headers = [{} if token is None else {"authorization": f"Bearer {token}"} for token in tokens]
    cpu_before, started = process_cpu(pid), time.monotonic()
    stop_at = started + seconds
    counts = await asyncio.gather(*(worker(url, h, stop_at) for h in headers))
    elapsed = time.monotonic() - started
    return Sample(mode, sum(counts), elapsed, process_cpu(pid) - cpu_before)


async def cold_calls(url: str, pid: int, tokens: Sequence[str]) -> tuple[float, float]:
    """One caller, each token new to the server: (median latency ms, server CPU ms per call)."""
    latencies = []
    cpu_before = process_cpu(pid)
    base = {"accept": "application/json, text/event-stream", "mcp-protocol-version": PROTOCOL}
    async with httpx2.AsyncClient(headers=base, timeout=30) as http:
        for n, token in enumerate(tokens):
            body = {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": CALL}
            started = time.perf_counter()
            response = await http.post(url, json=body, headers={"authorization": f"Bearer {token}"})
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"cold call failed: {response.status_code} {response.text}")
    cpu = process_cpu(pid) - cpu_before
    return 1000 * statistics.median(latencies), 1000 * cpu / len(tokens)


def run(rounds: int, seconds: float, workers: int, cold: int) -> None:
    """Start everything, interleave the modes round by round, print the figures."""
    print(f"load average at start: {' '.join(load_average())}", flush=True)
    ports = {mode: free_port() for mode in MODES}
    urls = {mode: f"http://127.0.0.1:{port}/mcp" for mode, port in ports.items()}
    as_port = free_port()
    issuer = f"http://127.0.0.1:{as_port}"
    key = ECKey.generate_key("P-256", private=True)
    key.ensure_kid()
    public = json.dumps(key.as_dict(private=False, use="sig", alg="ES256"))
    env = {**CREDENTIALS, "BENCH_AUDIENCES": " ".join(urls.values()), "BENCH_PUBLIC_KEY": public}

    def tokens(mode: str, label: object) -> list[str | None]:
        """One token per caller (no shared lookups)."""
        if mode == "off":
            return [None] * workers
        if mode == "jwt":
            return [jwt_token(key, issuer, urls["jwt"], f"{label}-{n}") for n in range(workers)]
        return [bench_token(f"{label}-{n}") for n in range(workers)]

    with contextlib.ExitStack() as stack:
        stack.enter_context(child(["stub-as", str(as_port)], env, f"{issuer}/introspect"))
        pids = {}
        for mode in MODES:
            ttl = "0" if mode == "nocache" else "30"
            flags = ["--port", str(ports[mode]), "--auth-server", issuer, "--nws-replay"]
            flags += ["--resource-url", urls[mode], "--introspection-cache-ttl", ttl]
            health = f"http://127.0.0.1:{ports[mode]}/health"
            pids[mode] = stack.enter_context(child(["serve", mode, *flags], env, health)).pid
        steady = {mode: tokens(mode, "steady") for mode in MODES}
        for mode in MODES:  # warm-up: imports, first introspection or JWKS, connection pools
            asyncio.run(burst(mode, urls[mode], pids[mode], 1.0, steady[mode]))
        results, colds = [], []
        for index in range(rounds):
            shift = index % len(MODES)  # rotate so no mode always goes first
            order = MODES[shift:] + MODES[:shift]
            samples = [asyncio.run(burst(m, urls[m], pids[m], seconds, steady[m])) for m in order]
            results.append(samples)
            print(
                f"round {index + 1}: "
                + "  ".join(
                    f"{s.mode} {s.rate:7.1f}/s {s.cpu_ms_per_call:.3f} ms" for s in samples
                ),
                flush=True,
            )
            cold_order = COLD_MODES if index % 2 == 0 else COLD_MODES[::-1]
            new = {m: [str(tokens(m, f"cold{index}-{i}")[0]) for i in range(cold)] for m in MODES}
            colds.append({m: asyncio.run(cold_calls(urls[m], pids[m], new[m])) for m in cold_order})
    print(f"\nmedians over {rounds} rounds ({seconds:g} s per mode, {workers} callers):")
    for mode, (rate, ratio, added) in summarise(results).items():
        print(f"  {mode:8} {rate:8.1f} calls/s  {ratio:5.2f}x off  {added:+.3f} ms CPU/call vs off")
    print(f"first call of a new token ({cold} per round, one caller), medians:")
    for mode in COLD_MODES:
        latency = statistics.median(c[mode][0] for c in colds)
        cpu = statistics.median(c[mode][1] for c in colds)
        name = "introspection" if mode == "cached" else "JWT"
        print(f"  {name:13} {latency:6.2f} ms per call  {cpu:.3f} ms server CPU per call")
    for name, micro in asyncio.run(auth_path_cpu_us()).items():
        print(f"in-process CPU of the gate on a {name} token (already verified): {micro:.1f} us")
    print(f"load average at the end: {' '.join(load_average())}")


def load_average() -> list[str]:
    """The 1, 5 and 15 minute load averages."""
    return Path("/proc/loadavg").read_text().split()[:3]


async def auth_path_cpu_us(n: int = 20_000) -> dict[str, float]:
    """CPU microseconds per request of the bearer gate on a verified token, free of load noise."""
    from secure_mcp.common.ratelimit import MemoryLimiter
    from secure_mcp.common.resource_credentials import ResourceCredentials
    from secure_mcp.weather.app import _well_formed
    from secure_mcp.weather.bearer import BearerAuthMiddleware
    from secure_mcp.weather.rfc7662 import IntrospectionVerifier
    from secure_mcp.weather.verifier import AccessTokenVerifier

    issuer, resource = "http://127.0.0.1:9", "http://127.0.0.1:8/mcp"  # loopback: http is fine
    key = ECKey.generate_key("P-256", private=True)
    key.ensure_kid()
    claims = {"active": True, "aud": resource, "scope": "weather:read", "iss": issuer}
    meta = {"issuer": issuer, "introspection_endpoint": f"{issuer}/introspect"}
    meta["jwks_uri"] = f"{issuer}/jwks"
    jwks = {"keys": [key.as_dict(private=False)]}

    def answer(request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST":
            return httpx2.Response(200, json=claims)
        return httpx2.Response(200, json=jwks if request.url.path == "/jwks" else meta)

    introspection = IntrospectionVerifier(
        issuer=issuer, resource=resource, credentials=ResourceCredentials("id", "secret"),
        cache_ttl=3600, cache_size=10, transport=httpx2.MockTransport(answer),
        well_formed=_well_formed,
    )  # fmt: skip
    verifier = AccessTokenVerifier(introspection)

    async def nothing(*_: object) -> None:
        """The app behind the gate, and the ASGI send."""

    async def receive() -> dict[str, str]:
        return {"type": "http.request"}

    gate = BearerAuthMiddleware(
        nothing, verifier=verifier, failures=MemoryLimiter(rate=0.5, burst=30),
        required_scopes=["weather:read"], resource_metadata="", public_paths=[],
    )  # fmt: skip
    figures = {}
    for name, token in (
        ("opaque (cached)", bench_token("micro")),
        ("JWT", jwt_token(key, issuer, resource, "micro")),
    ):
        headers = [(b"host", b"127.0.0.1:8"), (b"authorization", f"Bearer {token}".encode())]
        scope = {"type": "http", "path": "/mcp", "query_string": b"", "headers": headers}
        await gate(dict(scope), receive, nothing)  # the one lookup; the loop hits the cache
        started = time.process_time()
        for _ in range(n):
            await gate(dict(scope), receive, nothing)
        figures[name] = 1e6 * (time.process_time() - started) / n
    await verifier.aclose()
    if verifier.jwt.jwks.fetches != 1:
        raise RuntimeError("the JWT was not verified once and then remembered")
    return figures


def main(argv: list[str]) -> None:
    """`run` by default; `stub-as PORT` and `serve MODE FLAGS...` are the child processes."""
    if argv[:1] == ["stub-as"]:
        serve_stub_as(int(argv[1]))
        return
    if argv[:1] == ["serve"]:
        serve_weather(argv[1], argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cold", type=int, default=20, help="new tokens per mode and round")
    args = parser.parse_args(argv)
    run(args.rounds, args.seconds, args.workers, args.cold)


if __name__ == "__main__":
    main(sys.argv[1:])
