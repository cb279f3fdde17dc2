"""Start the real weather.py on 127.0.0.1 for end-to-end tests (always stopped afterwards)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import Program, free_port, run_program

PINNED_ENV = (
    "INTROSPECTION_CLIENT_ID",
    "INTROSPECTION_CLIENT_SECRET",
    "NWS_API_BASE",
    "NWS_REPLAY",
    "WEATHER_REQUIRED_SCOPES",
    "WEATHER_INTROSPECTION_CACHE_TTL",
    "WEATHER_TOKEN_FORMAT",
    "WEATHER_FAILED_TOKEN_LIMIT",
    "WEATHER_HEADER_TIMEOUT",
    "WEATHER_BODY_TIMEOUT",
    "WEATHER_MAX_CONNECTIONS",
    "WEATHER_MAX_CONNECTIONS_PER_SOURCE",
    "WEATHER_WORKERS",
    "WEATHER_METRICS",
)


@dataclass
class WeatherServer:
    """A running weather.py: its MCP URL, port and process."""

    url: str
    port: int
    program: Program

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return self.url.removesuffix("/mcp")


@contextlib.contextmanager
def run_weather_server(
    tmp_path: Path,
    *,
    auth_server: str,
    oauth_data_dir: Path,
    port: int | None = None,
    nws_replay: bool = True,
    extra_env: Mapping[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> Iterator[WeatherServer]:
    """Run weather.py with `--resource-url http://127.0.0.1:<port>/mcp` until the block ends."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    args = [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--auth-server",
        auth_server,
        "--resource-url",
        url,
        "--oauth-data-dir",
        str(oauth_data_dir),
        *(["--nws-replay"] if nws_replay else []),
        *extra_args,
    ]
    # A clean slate: nothing from the caller's shell or .env (empty means "use the default").
    env = {**dict.fromkeys(PINNED_ENV, ""), **(extra_env or {})}
    ready = f"http://127.0.0.1:{port}/health"
    with run_program("weather.py", args, ready_url=ready, log_dir=tmp_path, env=env) as program:
        yield WeatherServer(url, port, program)
