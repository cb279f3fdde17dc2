"""The real oauth.py process: the whole flow over HTTP, and a restart over the same data."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from secure_mcp.common.resource_credentials import load_all
from tests.support.headless import authorize_headlessly
from tests.support.oauth_harness import REDIRECT, RESOURCE, pkce, query_of
from tests.support.oauth_server import run_oauth_server

pytestmark = pytest.mark.process


async def test_full_flow_against_the_real_process(tmp_path: Path) -> None:
    with run_oauth_server(tmp_path) as server:
        out = server.program.output()
        assert f"issuer:      {server.issuer}" in out
        assert server.metadata_url in out
        assert server.password not in out  # a configured password is never printed
        async with httpx2.AsyncClient(base_url=server.issuer, timeout=10) as http:
            meta = (await http.get("/.well-known/oauth-authorization-server")).json()
            assert meta["issuer"] == server.issuer
            client = (
                await http.post(
                    meta["registration_endpoint"],
                    json={
                        "redirect_uris": [REDIRECT],
                        "token_endpoint_auth_method": "none",
                        "grant_types": ["authorization_code", "refresh_token"],
                        "client_name": "Process test",
                    },
                )
            ).json()
            verifier, challenge = pkce()
            url = str(
                httpx2.URL(
                    meta["authorization_endpoint"],
                    params={
                        "response_type": "code",
                        "client_id": client["client_id"],
                        "redirect_uri": REDIRECT,
                        "code_challenge": challenge,
                        "code_challenge_method": "S256",
                        "state": "xyz",
                        "resource": RESOURCE,
                    },
                )
            )
            location = await authorize_headlessly(
                http, url, username=server.username, password=server.password
            )
            params = query_of(location)
            assert (params["state"], params["iss"]) == ("xyz", server.issuer)
            token = await http.post(
                meta["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": params["code"],
                    "redirect_uri": REDIRECT,
                    "code_verifier": verifier,
                    "client_id": client["client_id"],
                    "resource": RESOURCE,
                },
            )
            assert token.status_code == 200, token.text
            tokens = token.json()
            refreshed = await http.post(
                meta["token_endpoint"],
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": tokens["refresh_token"],
                    "client_id": client["client_id"],
                },
            )
            assert refreshed.status_code == 200, refreshed.text
            access = refreshed.json()["access_token"]
            creds = load_all(server.data_dir)[RESOURCE]
            rs_auth = (creds.client_id, creds.client_secret)
            info = await http.post(
                meta["introspection_endpoint"], data={"token": access}, auth=rs_auth
            )
            assert info.json()["active"] is True
            assert info.json()["aud"] == RESOURCE
            revoke = await http.post(
                meta["revocation_endpoint"],
                data={"token": refreshed.json()["refresh_token"], "client_id": client["client_id"]},
            )
            assert revoke.status_code == 200
            info = await http.post(
                meta["introspection_endpoint"], data={"token": access}, auth=rs_auth
            )
            assert info.json() == {"active": False}
    assert server.program.process.returncode == 0  # SIGINT stops it cleanly

    # restart on the same port and data: the registration and credentials are still there
    with run_oauth_server(tmp_path, port=server.port) as again:
        assert load_all(again.data_dir)[RESOURCE] == creds
        async with httpx2.AsyncClient(base_url=again.issuer, timeout=10) as http:
            page = await http.get(url)
            assert page.status_code == 200
            assert "Sign in" in page.text


def test_generated_password_is_printed(tmp_path: Path) -> None:
    with run_oauth_server(tmp_path, extra_env={"OAUTH_DEMO_PASSWORD": ""}) as server:
        out = server.program.output()
        assert f"(kept in {server.data_dir / 'demo-password'}; set OAUTH_DEMO_PASSWORD" in out
        assert "username demo" in out


def test_bad_flag_exits_with_a_message(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="scope tokens"),
        run_oauth_server(tmp_path, extra_env={"OAUTH_SCOPES": 'bad"scope'}),
    ):
        pass
