"""Start the real programs as child processes on 127.0.0.1 ephemeral ports, and always stop them."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Program:
    """A running child process and where its output goes."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        """Everything the program printed so far (stdout and stderr)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the program: SIGINT, then SIGKILL when it does not exit in time."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)


def wait_ready(program: Program, url: str, timeout: float = 30.0) -> None:
    """Poll `url` until it answers with any HTTP status; raise with the program's output if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if program.process.poll() is not None:
            raise RuntimeError(
                f"program exited with {program.process.returncode}:\n{program.output()}"
            )
        try:
            httpx2.get(url, timeout=1.0)
        except httpx2.TransportError:
            time.sleep(0.1)
            continue
        return
    program.stop()
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{program.output()}")


def start_program(
    script: str, args: Sequence[str], *, log_dir: Path, env: Mapping[str, str] | None = None
) -> Program:
    """Start `python <script> <args>` from the repository root; do not wait for it."""
    log_path = log_dir / f"{Path(script).stem}-{time.monotonic_ns()}.log"
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / script), *args],
            cwd=ROOT,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return Program(process, log_path)


@contextlib.contextmanager
def run_program(
    script: str,
    args: Sequence[str],
    *,
    ready_url: str,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
) -> Iterator[Program]:
    """Run `python <script> <args>` from the repository root until the block ends."""
    program = start_program(script, args, log_dir=log_dir, env=env)
    try:
        wait_ready(program, ready_url)
        yield program
    finally:
        program.stop()


def run_to_exit(
    script: str, args: Sequence[str], env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run `python <script> <args>` from the repository root to its exit (60 s at most)."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
