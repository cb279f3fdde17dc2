"""How long a request may take to arrive and how many connections are held: both servers' limits."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass

from secure_mcp.common.settings import Option, Options, integer, number

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


def limit_options(env_prefix: str) -> tuple[Option, ...]:
    """The four limit settings; each flag also reads `<env_prefix>_<NAME>` from the environment."""
    p = env_prefix
    return (
        Option(
            "--header-timeout",
            f"{p}_HEADER_TIMEOUT",
            f"seconds for a request head ({p}_HEADER_TIMEOUT, default {DEFAULT_HEADER_TIMEOUT:g})",
            number,
            DEFAULT_HEADER_TIMEOUT,
            flag_type=float,
        ),
        Option(
            "--body-timeout",
            f"{p}_BODY_TIMEOUT",
            f"seconds for a request body ({p}_BODY_TIMEOUT, default {DEFAULT_BODY_TIMEOUT:g})",
            number,
            DEFAULT_BODY_TIMEOUT,
            flag_type=float,
        ),
        Option(
            "--max-connections",
            f"{p}_MAX_CONNECTIONS",
            f"open connections ({p}_MAX_CONNECTIONS, default {DEFAULT_MAX_CONNECTIONS})",
            integer,
            DEFAULT_MAX_CONNECTIONS,
            flag_type=int,
        ),
        Option(
            "--max-connections-per-source",
            f"{p}_MAX_CONNECTIONS_PER_SOURCE",
            f"open connections from one address ({p}_MAX_CONNECTIONS_PER_SOURCE, "
            "default half of the overall cap)",
            integer,
            flag_type=int,
        ),
    )


def add_limit_flags(parser: argparse.ArgumentParser, env_prefix: str) -> None:
    """The four limit flags on `parser`."""
    Options(limit_options(env_prefix)).add_to(parser)


def limits_from(
    args: argparse.Namespace, env: Mapping[str, str], env_prefix: str
) -> ConnectionLimits:
    """The limits from parsed flags over the environment over the defaults; ValueError if bad."""
    values = Options(limit_options(env_prefix)).values(args, env)
    most = values["max_connections"]
    per_source = values["max_connections_per_source"]
    return ConnectionLimits(
        header_timeout=values["header_timeout"],
        body_timeout=values["body_timeout"],
        max_connections=most,
        max_connections_per_source=most // 2 if per_source is None else per_source,
    )
