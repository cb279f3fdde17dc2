"""Run the real client.py as a child process; play the browser when it prints a sign-in URL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx2

from tests.support.headless import authorize_headlessly
from tests.support.oauth_server import OAuthServer
from tests.support.processes import ROOT

RUN_TIMEOUT = 60.0


@dataclass
class ClientRun:
    """What one client.py process did."""

    code: int
    out: str
    err: str
    signed_in: int  # sign-in pages completed for it


def client_env(server_url: str, state_dir: Path, **extra: str) -> dict[str, str]:
    """The child's environment: client variables pinned (a developer's .env cannot leak in)."""
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "MCP_SERVER_URL": server_url,
        "MCP_CLIENT_STATE_DIR": str(state_dir),
        "MCP_CLIENT_METADATA_URL": "",
        "MCP_CLIENT_ID": "",
        "ANTHROPIC_API_KEY": "",
        **extra,
    }


async def _sign_in_when_asked(
    stderr: asyncio.StreamReader, oauth: OAuthServer | None, lines: list[str]
) -> int:
    """Read the client's progress; each authorization URL it prints is completed headlessly."""
    signed_in = 0
    while line := (await stderr.readline()).decode():
        lines.append(line)
        url = line.strip()
        if oauth is not None and url.startswith(f"{oauth.issuer}/authorize?"):
            async with httpx2.AsyncClient(timeout=10) as browser:
                location = await authorize_headlessly(
                    browser, url, username=oauth.username, password=oauth.password
                )
                await browser.get(location)  # the client's loopback listener
            signed_in += 1
    return signed_in


async def run_client(
    server_url: str,
    state_dir: Path,
    *args: str,
    oauth: OAuthServer | None = None,
    env: Mapping[str, str] | None = None,
    deadline: float = RUN_TIMEOUT,
) -> ClientRun:
    """Run client.py to its end; with `oauth`, sign in when asked (`--no-browser` is added)."""
    flags = ["--no-browser"] if oauth is not None else []
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "client.py"),
        *flags,
        *args,
        cwd=ROOT,
        env=client_env(server_url, state_dir, **(env or {})),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    err: list[str] = []
    try:
        out, signed_in, code = await asyncio.wait_for(
            asyncio.gather(
                process.stdout.read(),
                _sign_in_when_asked(process.stderr, oauth, err),
                process.wait(),
            ),
            deadline,
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    return ClientRun(code, out.decode(), "".join(err), signed_in)
