"""DPoP end to end: the real oauth.py and weather.py (both asking for nonces, weather.py
refusing bearer tokens) and the client's own code, signing in through the real pages."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from secure_mcp.client.auth.dpop import KEYS_FILE
from secure_mcp.client.auth.storage import STATE_FILE
from secure_mcp.client.settings import ClientSettings
from secure_mcp.common.resource_credentials import load_all
from tests.support.dpop import new_key, proof
from tests.support.flows import INITIALIZE, MCP_ACCEPT, Stack, run_stack
from tests.support.headless import HeadlessBrowser, use_weather

pytestmark = pytest.mark.process


@contextlib.contextmanager
def dpop_stack(tmp_path: Path, *oauth_args: str) -> Iterator[Stack]:
    """oauth.py with --dpop-nonce, weather.py with --require-dpop --dpop-nonce."""
    env = {"OAUTH_DPOP_NONCE": "1", **dict(a.split("=", 1) for a in oauth_args)}
    replay_db = str(tmp_path / "weather-dpop" / "proofs.sqlite3")
    weather_args = ("--require-dpop", "--dpop-nonce", "--dpop-replay-db", replay_db)
    with run_stack(tmp_path, oauth_env=env, weather_args=weather_args) as stack:
        yield stack


def stored_access_token(state_dir: Path) -> str:
    """The access token the client keeps."""
    state = json.loads((state_dir / STATE_FILE).read_text())
    (entries,) = state["tokens"].values()
    (entry,) = entries.values()
    return str(entry["token"]["access_token"])


def expire_stored_token(state_dir: Path) -> None:
    """Make the client believe its access token has expired (it refreshes at the next run)."""
    path = state_dir / STATE_FILE
    state = json.loads(path.read_text())
    for entries in state["tokens"].values():
        for entry in entries.values():
            entry["expires_at"] = 1.0
    path.write_text(json.dumps(state))


async def introspect(stack: Stack, token: str) -> dict[str, object]:
    """What oauth.py says of `token`, asked as weather.py."""
    credentials = load_all(stack.oauth.data_dir)[stack.weather.url]
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{stack.oauth.issuer}/introspect",
            data={"token": token},
            auth=(credentials.client_id, credentials.client_secret),
        )
    return dict(response.json())


@pytest.mark.parametrize("token_format", ["opaque", "jwt"])
async def test_the_three_programs_speak_dpop(tmp_path: Path, token_format: str) -> None:
    with dpop_stack(tmp_path, f"OAUTH_ACCESS_TOKEN_FORMAT={token_format}") as stack:
        browser = HeadlessBrowser(stack.oauth)
        state = tmp_path / "client-state"
        settings = ClientSettings(state_dir=state, server_url=stack.weather.url, verbose=True)
        lines: list[str] = []
        await use_weather(settings, browser, lines)
        dpop_lines = [line for line in lines if line.startswith("[dpop]")]
        assert any("supports DPoP: tokens will be bound to a new key" in x for x in dpop_lines)
        assert any("asked for a DPoP nonce" in line for line in dpop_lines)
        assert any("access token is bound to the DPoP key" in line for line in dpop_lines)
        assert any("sending the DPoP-bound token with a proof" in line for line in dpop_lines)
        keys = state / KEYS_FILE
        assert stat.S_IMODE(keys.stat().st_mode) == 0o600

        token = stored_access_token(state)
        seen = await introspect(stack, token)
        assert seen["token_type"] == "DPoP"
        (issuer_entry,) = json.loads(keys.read_text())["issuers"].values()
        public = {k: issuer_entry["jwk"][k] for k in ("crv", "kty", "x", "y")}
        thumb = hashlib.sha256(json.dumps(public, separators=(",", ":"), sort_keys=True).encode())
        assert seen["cnf"] == {
            "jkt": base64.urlsafe_b64encode(thumb.digest()).rstrip(b"=").decode()
        }

        # a second run: the stored, bound token with the stored key, no browser
        await use_weather(settings, browser, lines)
        # a third run after expiry: the bound refresh token, with a proof of the same key
        expire_stored_token(state)
        await use_weather(settings, browser, lines)
        assert len(browser.opened) == 1
        assert stored_access_token(state) != token

        # the stolen token: as bearer, or with a proof of the thief's key
        stolen = stored_access_token(state)
        headers = {"accept": MCP_ACCEPT, "content-type": "application/json"}
        async with httpx2.AsyncClient() as http:
            as_bearer = await http.post(
                stack.weather.url,
                json=INITIALIZE,
                headers={**headers, "authorization": f"Bearer {stolen}"},
            )
            thief = new_key()
            with_proof = await http.post(
                stack.weather.url,
                json=INITIALIZE,
                headers={
                    **headers,
                    "authorization": f"DPoP {stolen}",
                    "dpop": proof(thief, "POST", stack.weather.url, token=stolen),
                },
            )
        assert as_bearer.status_code == 401
        assert with_proof.status_code == 401
        assert 'error="use_dpop_nonce"' in with_proof.headers["www-authenticate"]
        nonce = with_proof.headers["dpop-nonce"]
        async with httpx2.AsyncClient() as http:
            retried = await http.post(
                stack.weather.url,
                json=INITIALIZE,
                headers={
                    **headers,
                    "authorization": f"DPoP {stolen}",
                    "dpop": proof(thief, "POST", stack.weather.url, token=stolen, nonce=nonce),
                },
            )
        assert retried.status_code == 401
        assert "not bound to the DPoP proof" in retried.headers["www-authenticate"]
