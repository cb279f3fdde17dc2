"""demo.py: start oauth.py and weather.py, wait until both answer, run the client, stop both."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpx2

from secure_mcp.common.paths import default_demo_log_dir
from secure_mcp.common.private_files import check_private_dir, open_private

OAUTH_HEALTH = "http://localhost:8003/health"
WEATHER_HEALTH = "http://127.0.0.1:8000/health"
LOG_TAIL_LINES = 15
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class DemoError(Exception):
    """A server did not come up; `str(exc)` says which and why."""


class Process(Protocol):
    """The part of `subprocess.Popen` the demo uses."""

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


Launcher = Callable[[Sequence[str], Path], Process]
Probe = Callable[[str], bool]
RunClient = Callable[[Sequence[str]], int]


@dataclass(frozen=True)
class Server:
    """A program the demo starts, and the URL that answers once it is ready."""

    name: str
    argv: tuple[str, ...]
    health_url: str
    show_banner: bool = False  # echo what it printed before serving (oauth.py: the demo login)
    show_warnings: bool = False  # echo only its banner's `!` block (weather.py: replay mode)


@dataclass(frozen=True)
class DemoSettings:
    """What demo.py runs; everything it does not know goes to client.py."""

    nws_replay: bool = False
    reuse: bool = False  # use servers already answering on the ports (only when asked)
    client_args: tuple[str, ...] = ()
    root: Path = Path(__file__).resolve().parents[2]
    python: str = sys.executable
    log_dir: Path = field(default_factory=lambda: default_demo_log_dir({}))
    ready_timeout: float = 30.0
    stop_timeout: float = 10.0

    def servers(self) -> list[Server]:
        """The authorization server first: weather.py reads the credentials it writes."""
        weather = [self.python, str(self.root / "weather.py")]
        if self.nws_replay:
            weather.append("--nws-replay")
        return [
            Server("oauth.py", (self.python, str(self.root / "oauth.py")), OAUTH_HEALTH, True),
            Server("weather.py", tuple(weather), WEATHER_HEALTH, show_warnings=True),
        ]


def settings_from(argv: Sequence[str], env: Mapping[str, str]) -> DemoSettings:
    """demo.py's own flags; the rest (e.g. --paste, --query) are passed to the client."""
    parser = argparse.ArgumentParser(
        prog="demo.py",
        description="Start oauth.py and weather.py, run client.py, stop both on exit. "
        "Other flags go to client.py (see `client.py --help`).",
    )
    parser.add_argument(
        "--nws-replay",
        "--offline",
        action="store_true",
        dest="nws_replay",
        help="weather.py serves recorded NWS responses (no internet needed)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="use an oauth.py or weather.py already answering on its port instead of stopping",
    )
    known, rest = parser.parse_known_args(list(argv))
    return DemoSettings(
        nws_replay=known.nws_replay,
        reuse=known.reuse,
        client_args=tuple(rest),
        log_dir=default_demo_log_dir(env),
    )


def parent_death_signal(
    platform: str = sys.platform,
    prctl: Callable[..., int] | None = None,
    getppid: Callable[[], int] = os.getppid,
    kill: Callable[[int, int], None] = os.kill,
) -> Callable[[], None] | None:
    """A `preexec_fn` asking Linux to send SIGTERM to the child when demo.py dies (prctl).

    Even SIGKILL of demo.py then stops its servers. None where there is no prctl (not Linux).
    """
    if not platform.startswith("linux"):
        return None
    set_option = prctl or ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:  # runs in the child, between fork and exec
        set_option(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if getppid() != parent:  # demo.py died before the signal was armed
            kill(os.getpid(), signal.SIGTERM)

    return arm


def open_log(log_path: Path) -> int:
    """The log file, created (or emptied) with mode 0600: logs may name the demo login."""
    check_private_dir(log_path.parent)  # created 0700; ours alone, or refused
    fd = open_private(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.fchmod(fd, 0o600)
    return fd


def popen_launcher(env: Mapping[str, str]) -> Launcher:
    """Start programs in their own session (Ctrl-C in the terminal reaches only the client),
    stopped by the kernel if demo.py itself is killed."""

    def launch(argv: Sequence[str], log_path: Path) -> Process:
        log = open_log(log_path)
        try:
            return subprocess.Popen(  # noqa: S603 - our own scripts, no shell
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**env, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
                preexec_fn=parent_death_signal(),
            )
        finally:
            os.close(log)

    return launch


def http_probe(url: str) -> bool:
    """True when `url` answers at all (any HTTP status)."""
    try:
        httpx2.get(url, timeout=1.0)
    except httpx2.TransportError:
        return False
    return True


def port_in_use(url: str) -> bool:
    """True when something accepts connections on `url`'s host and port (any address of it)."""
    parts = urlsplit(url)
    port = parts.port or 80
    try:
        addresses = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except OSError:
        return False
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(1.0)
            if sock.connect_ex(address) == 0:
                return True
    return False


def _log_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a program's log, for the error message."""
    return "\n".join(_log_lines(path)[-lines:])


def log_banner(path: Path) -> str:
    """What a program printed before its server's own log lines (`INFO: ...`) began."""
    banner: list[str] = []
    for line in _log_lines(path):
        if line.startswith(("INFO:", "WARNING:", "ERROR:")):
            break
        banner.append(line)
    return "\n".join(banner)


def warning_block(banner: str) -> str:
    """The lines of `banner` from its first `!!!` line to its last (e.g. replay mode)."""
    lines = banner.splitlines()
    marked = [i for i, line in enumerate(lines) if "!!!" in line]
    return "\n".join(lines[marked[0] : marked[-1] + 1]) if marked else ""


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def exit_on_hangup() -> None:
    """SIGTERM and SIGHUP (terminal closed) end the demo like Ctrl-C, so the servers stop too."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _raise_interrupt)


@dataclass
class Demo:
    """One run of demo.py, its outside world injectable for tests."""

    settings: DemoSettings
    launch: Launcher
    run_client: RunClient
    probe: Probe = http_probe
    busy: Probe = port_in_use
    write: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep
    on_hangup: Callable[[], None] = exit_on_hangup
    started: list[tuple[Server, Process]] = field(default_factory=list)

    def run(self) -> int:
        """Start what is not running yet, run the client, and always stop what was started."""
        try:
            self.on_hangup()
            for server in self.settings.servers():
                self._start(server)
            return self.run_client(self.settings.client_args)
        except DemoError as exc:
            self.write(f"demo.py: {exc}")
            return 1
        except KeyboardInterrupt:
            return 130
        finally:
            self.stop_all()

    def _start(self, server: Server) -> None:
        if self.settings.reuse and self.probe(server.health_url):
            self.write(f"{server.name} is already running ({server.health_url}); using it.")
            return
        if self.busy(server.health_url):  # anything can answer there: never used unasked
            port = urlsplit(server.health_url).port
            raise DemoError(
                f"port {port} is already in use, so {server.name} cannot start there; stop "
                f"the program using it, or pass --reuse to use a {server.name} already running."
            )
        log_path = self.settings.log_dir / f"{Path(server.name).stem}.log"
        self.write(f"Starting {server.name} (log: {log_path}) ...")
        process = self.launch(server.argv, log_path)
        self.started.append((server, process))
        self._wait_ready(server, process, log_path)
        if server.show_banner:
            self.write(log_banner(log_path))
        elif server.show_warnings and (warnings := warning_block(log_banner(log_path))):
            self.write(warnings)

    def _wait_ready(self, server: Server, process: Process, log_path: Path) -> None:
        deadline = time.monotonic() + self.settings.ready_timeout
        while not self.probe(server.health_url):
            code = process.poll()
            if code is not None:
                tail = log_tail(log_path)
                raise DemoError(f"{server.name} exited with status {code}:\n{tail}")
            if time.monotonic() > deadline:
                raise DemoError(f"{server.name} did not answer {server.health_url} in time")
            self.sleep(0.1)

    def stop_all(self) -> None:
        """Stop the started programs, newest first: SIGINT, then SIGKILL after the timeout."""
        while self.started:
            server, process = self.started.pop()
            if process.poll() is not None:
                continue
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=self.settings.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=self.settings.stop_timeout)
            with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
                self.write(f"Stopped {server.name}.")


def main(argv: Sequence[str], env: Mapping[str, str], run_client: RunClient | None = None) -> int:
    """Run demo.py with the real launcher and health probe; the client runs in this process."""
    settings = settings_from(argv, env)
    if run_client is None:
        run_client = functools.partial(_client_main, env=env)
    return Demo(settings, popen_launcher(env), run_client).run()


def _client_main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """client.py in this process, so Ctrl-C behaves exactly as in client.py."""
    from secure_mcp.client.cli import main as client_main

    return client_main(argv, env)
