"""Start-up: how long client.py takes to show its help, run `--call`, and show its first prompt.

Starts oauth.py and weather.py on loopback (NWS replayed), signs a client in once (headlessly,
on the real pages), then times, as new processes, side by side in every round (order rotated):

- `python -c pass` and the bare imports each command needs (the floor it cannot go under);
- `client.py --help`;
- `client.py --call get_alerts '{"state": "FL"}'` with the stored tokens (connect, list, call);
- the interactive client on a pseudo-terminal, with a Claude key set, until its first `> `.

Prints the median of each with its ratios against `python -c pass` and against the bare
imports, and the targets (`--help` under 0.3 s, `--call` under 1.5 s). Bytecode is compiled
first (this machine may run with PYTHONDONTWRITEBYTECODE set, which would time compilation).

Usage: `uv run python bench/startup.py` (7 rounds), `--rounds N`.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import os
import pty
import select
import site
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test helpers that start the programs and sign in

from tests.support.client_process import client_env, run_client  # noqa: E402
from tests.support.flows import run_stack  # noqa: E402

PROMPT_TIMEOUT = 60.0
CALL = ["--call", "get_alerts", '{"state": "FL"}']
IMPORTS = {
    "help": "import argparse, dotenv",
    "call": "import mcp.client.streamable_http, mcp.client.auth, httpx2, jsonschema",
    "prompt": "import mcp.client.streamable_http, mcp.client.auth, httpx2, prompt_toolkit",
    "claude": "import anthropic",  # what none of the three loads any more
}
TARGETS = {"--help": 0.3, "--call": 1.5}


def compile_bytecode() -> None:
    """Compile the environment's packages and the project once, quietly."""
    for folder in [*site.getsitepackages(), str(ROOT / "secure_mcp")]:
        compileall.compile_dir(folder, quiet=2, workers=2)


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Wall time of one process run to its end (it must succeed)."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[1:]} failed: {done.stderr.decode(errors='replace')}")
    return elapsed


def first_prompt(env: dict[str, str]) -> float:
    """Seconds until the interactive client, on a pseudo-terminal, shows its first `> `."""
    main, child = pty.openpty()
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "client.py")],
        stdin=child,
        stdout=child,
        stderr=child,
        env={**env, "TERM": "xterm"},
        cwd=ROOT,
        close_fds=True,
    )
    os.close(child)
    seen, answered = b"", False
    try:
        # prompt_toolkit draws `>` and moves the cursor on (an escape), so look for `>` alone.
        while b">" not in seen.split(b"/help lists commands.")[-1]:
            if time.perf_counter() - start > PROMPT_TIMEOUT:
                raise SystemExit(f"no prompt: {seen.decode(errors='replace')}")
            ready, _, _ = select.select([main], [], [], 0.01)
            if ready:
                try:
                    seen += os.read(main, 4096)
                except OSError:
                    raise SystemExit(f"client ended: {seen.decode(errors='replace')}") from None
            if not answered and b"\x1b[6n" in seen:  # a terminal answers where its cursor is
                os.write(main, b"\x1b[1;1R")
                answered = True
        return time.perf_counter() - start
    finally:
        process.kill()
        process.wait()
        os.close(main)


def measure(rounds: int, env: dict[str, str]) -> dict[str, list[float]]:
    """Every command once per round, in rotated order."""
    python = sys.executable
    commands: dict[str, Callable[[], float]] = {
        "python -c pass": lambda: timed([python, "-c", "pass"], env),
        **{
            f"imports: {name}": (lambda code=code: timed([python, "-c", code], env))
            for name, code in IMPORTS.items()
        },
        "--help": lambda: timed([python, str(ROOT / "client.py"), "--help"], env),
        "--call": lambda: timed([python, str(ROOT / "client.py"), *CALL], env),
        "first prompt": lambda: first_prompt(env),
    }
    names = list(commands)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(commands[name]())
    return times


def report(times: dict[str, list[float]]) -> None:
    """Medians and ratios, one line each."""
    median = {name: statistics.median(values) for name, values in times.items()}
    floor = median["python -c pass"]
    bare = {"--help": "help", "--call": "call", "first prompt": "prompt"}
    print(f"{'':24} {'median':>8} {'min':>8} {'x pass':>8} {'x imports':>10}  target")
    for name, value in median.items():
        imports = bare.get(name)
        ratio = f"{value / median[f'imports: {imports}']:.2f}" if imports else ""
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            verdict = f"< {target:g} s: {'met' if value < target else 'MISSED'}"
        print(
            f"{name:24} {value:8.3f} {min(times[name]):8.3f} {value / floor:8.1f} "
            f"{ratio:>10}  {verdict}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    compile_bytecode()
    with tempfile.TemporaryDirectory() as tmp, run_stack(Path(tmp)) as stack:
        state = Path(tmp) / "client-state"
        first = asyncio.run(run_client(stack.weather.url, state, *CALL, oauth=stack.oauth))
        if first.code != 0:
            raise SystemExit(f"sign-in failed: {first.err}")
        env = client_env(
            stack.weather.url,
            state,
            ANTHROPIC_API_KEY="sk-ant-bench-not-used",  # Claude on: still not loaded at start
            ANTHROPIC_BASE_URL="http://127.0.0.1:9",
        )
        load = os.getloadavg()
        times = measure(args.rounds, env)
    print(f"{args.rounds} rounds, load average {load[0]:.1f} at the start, medians in seconds")
    report(times)
    return 0


if __name__ == "__main__":
    sys.exit(main())
