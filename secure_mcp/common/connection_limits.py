"""How long a request may take to arrive and how many connections are held: both servers' limits."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 512  # well under the usual 1024 open files of a process
DEFAULT_MAX_PER_SOURCE = DEFAULT_MAX_CONNECTIONS // 2  # unless set: half the overall cap


@dataclass(frozen=True)
class ConnectionLimits:
    """Deadlines for a request to arrive, and caps on open connections (overall, per source).

    `header_timeout`: seconds from a connection (or the first byte of a keep-alive request) to
    the end of the request head. `body_timeout`: seconds from the head to the end of the body.
    A source is the peer's IPv4 address or IPv6 /64 (`secure_mcp.common.sources`).
    """

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_connections_per_source: int = DEFAULT_MAX_PER_SOURCE

    def __post_init__(self) -> None:
        if min(self.header_timeout, self.body_timeout) <= 0:
            raise ValueError("the header and body timeouts must be positive")
        if min(self.max_connections, self.max_connections_per_source) < 1:
            raise ValueError("the connection limits must be at least 1")
        if self.max_connections_per_source > self.max_connections:
            raise ValueError("the per-source connection limit cannot exceed the overall one")

    def summary(self) -> str:
        """One line for the start-up banners."""
        return (
            f"request head within {self.header_timeout:g} s, body within {self.body_timeout:g} s; "
            f"at most {self.max_connections} connections, {self.max_connections_per_source} "
            "per address"
        )


def add_limit_flags(parser: argparse.ArgumentParser, env_prefix: str) -> None:
    """The four limit flags; each also reads `<env_prefix>_<NAME>` from the environment."""
    p = env_prefix
    parser.add_argument(
        "--header-timeout",
        type=float,
        help=f"seconds for a request head ({p}_HEADER_TIMEOUT, default {DEFAULT_HEADER_TIMEOUT:g})",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        help=f"seconds for a request body ({p}_BODY_TIMEOUT, default {DEFAULT_BODY_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        help=f"open connections ({p}_MAX_CONNECTIONS, default {DEFAULT_MAX_CONNECTIONS})",
    )
    parser.add_argument(
        "--max-connections-per-source",
        type=int,
        help=f"open connections from one address ({p}_MAX_CONNECTIONS_PER_SOURCE, "
        "default half of the overall cap)",
    )


def _value(
    flag: float | None, env: Mapping[str, str], name: str, kind: type[float], default: float
) -> float:
    """A flag's value, else the environment's, else `default`; ValueError naming the variable."""
    if flag is not None:
        return flag
    raw = env.get(name) or str(default)
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def limits_from(
    args: argparse.Namespace, env: Mapping[str, str], env_prefix: str
) -> ConnectionLimits:
    """The limits from parsed flags over the environment over the defaults; ValueError if bad."""
    p = env_prefix
    most = int(
        _value(args.max_connections, env, f"{p}_MAX_CONNECTIONS", int, DEFAULT_MAX_CONNECTIONS)
    )
    return ConnectionLimits(
        header_timeout=_value(
            args.header_timeout, env, f"{p}_HEADER_TIMEOUT", float, DEFAULT_HEADER_TIMEOUT
        ),
        body_timeout=_value(
            args.body_timeout, env, f"{p}_BODY_TIMEOUT", float, DEFAULT_BODY_TIMEOUT
        ),
        max_connections=most,
        max_connections_per_source=int(
            _value(
                args.max_connections_per_source,
                env,
                f"{p}_MAX_CONNECTIONS_PER_SOURCE",
                int,
                most // 2,
            )
        ),
    )
