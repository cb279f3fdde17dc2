"""Introspection amplification: what N bogus bearer tokens cost oauth.py, side by side in one run.

Starts oauth.py and three weather.py servers on loopback (NWS replayed):

  before   --token-format any and no failed-token limit to speak of: every token is
           introspected, as weather.py did before tokens had a prefix and checksum
  check    the local format check alone (the failed-token limit out of the way)
  after    the defaults: the format check, and 30 invalid tokens per minute per address

and sends each the same N tokens of three kinds, one source address per kind: tokens in the old
format (plain random strings), tokens with the right prefix and a wrong checksum, and
well-formed tokens (valid checksum) that oauth.py never issued. Prints the introspection
requests oauth.py answered (its access log) and the answers weather.py gave, per kind and mode.
Usage: `uv run python bench/garbage_tokens.py` (`--tokens 300`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test helpers that start the programs

import httpx2  # noqa: E402

from secure_mcp.common import token_format  # noqa: E402
from tests.support.flows import INITIALIZE, MCP_ACCEPT  # noqa: E402
from tests.support.oauth_server import OAuthServer, run_oauth_server  # noqa: E402
from tests.support.processes import free_port  # noqa: E402
from tests.support.weather_server import run_weather_server  # noqa: E402

INTROSPECTION = '"POST /introspect HTTP/1.1"'


def wrong_checksum() -> str:
    token = token_format.mint(token_format.ACCESS_PREFIX)
    return token[:-8] + ("0" * 8 if not token.endswith("0" * 8) else "1" * 8)


KINDS: dict[str, Callable[[], str]] = {
    "old format": lambda: secrets.token_urlsafe(32),
    "wrong checksum": wrong_checksum,
    "valid checksum": lambda: token_format.mint(token_format.ACCESS_PREFIX),
}


def introspections(oauth: OAuthServer) -> int:
    """Introspection requests oauth.py has answered so far."""
    return oauth.program.output().count(INTROSPECTION)


async def flood(
    url: str, source: str, make: Callable[[], str], n: int
) -> tuple[dict[int, int], float]:
    """Send `n` tokens from `source`, one after another; the statuses seen and the seconds taken."""
    transport = httpx2.AsyncHTTPTransport(local_address=source)
    statuses: collections.Counter[int] = collections.Counter()
    start = time.perf_counter()
    async with httpx2.AsyncClient(transport=transport, timeout=30) as http:
        for _ in range(n):
            headers = {"accept": MCP_ACCEPT, "authorization": f"Bearer {make()}"}
            response = await http.post(url, json=INITIALIZE, headers=headers)
            statuses[response.status_code] += 1
    return dict(statuses), time.perf_counter() - start


def report(oauth: OAuthServer, modes: dict[str, str], n: int) -> None:
    """Flood each mode with each kind (a source address per pair) and print the figures."""
    print(f"{n} tokens of each kind, sent one after another:")
    print(f"  {'mode':7} {'kind':15} {'introspections':>14}  {'answers':24} ms/token")
    for m, (mode, url) in enumerate(modes.items()):
        for k, (kind, make) in enumerate(KINDS.items()):
            counted = introspections(oauth)
            statuses, seconds = asyncio.run(flood(url, f"127.0.{m + 1}.{k + 1}", make, n))
            calls = introspections(oauth) - counted
            answers = ", ".join(f"{v} x {s}" for s, v in sorted(statuses.items()))
            print(f"  {mode:7} {kind:15} {calls:>14}  {answers:24} {1000 * seconds / n:.2f}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=300, help="tokens of each kind (300)")
    n = parser.parse_args(argv).tokens
    unlimited = ("--failed-token-limit", str(10 * n))
    flags = {"before": ("--token-format", "any", *unlimited), "check": unlimited, "after": ()}
    ports = {mode: free_port() for mode in flags}
    urls = {mode: f"http://127.0.0.1:{port}/mcp" for mode, port in ports.items()}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="secure-mcp-garbage-")))
        oauth = stack.enter_context(run_oauth_server(tmp, resources=list(urls.values())))
        for mode, args in flags.items():
            stack.enter_context(
                run_weather_server(
                    tmp,
                    auth_server=oauth.issuer,
                    oauth_data_dir=oauth.data_dir,
                    port=ports[mode],
                    extra_args=args,
                )
            )
        report(oauth, urls, n)


if __name__ == "__main__":
    main(sys.argv[1:])
