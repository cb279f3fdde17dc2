"""The real oauth.py with a real document server on loopback (development flag), and without it."""

from __future__ import annotations

import os
from pathlib import Path

import httpx2
import pytest

from secure_mcp.common.resource_credentials import load_all
from tests.support.cimd_server import document, loopback_document_server
from tests.support.headless import authorize_headlessly
from tests.support.oauth_harness import REDIRECT, RESOURCE, pkce, query_of
from tests.support.oauth_server import OAuthServer, run_oauth_server
from tests.support.processes import run_to_exit

pytestmark = pytest.mark.process

INSECURE = {"OAUTH_CIMD_ALLOW_INSECURE": "1"}


def _authorization_url(server: OAuthServer, client_id: str, challenge: str) -> str:
    return str(
        httpx2.URL(
            f"{server.issuer}/authorize",
            params={
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": REDIRECT,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "state": "s1",
                "resource": RESOURCE,
            },
        )
    )


async def test_document_client_full_flow(tmp_path: Path) -> None:
    with (
        loopback_document_server() as docs,
        run_oauth_server(tmp_path, extra_env=INSECURE) as server,
    ):
        assert "!! WARNING: --cimd-allow-insecure" in server.program.output()
        client_id = docs.publish("/clients/demo.json", document(docs.url("/clients/demo.json")))
        verifier, challenge = pkce()
        async with httpx2.AsyncClient(base_url=server.issuer, timeout=10) as http:
            meta = (await http.get("/.well-known/oauth-authorization-server")).json()
            assert meta["client_id_metadata_document_supported"] is True
            location = await authorize_headlessly(
                http,
                _authorization_url(server, client_id, challenge),
                username=server.username,
                password=server.password,
            )
            code = query_of(location)["code"]
            token = await http.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT,
                    "code_verifier": verifier,
                    "client_id": client_id,
                    "resource": RESOURCE,
                },
            )
            assert token.status_code == 200, token.text
            refreshed = await http.post(
                "/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": token.json()["refresh_token"],
                    "client_id": client_id,
                },
            )
            assert refreshed.status_code == 200, refreshed.text
            access = refreshed.json()["access_token"]
            creds = load_all(server.data_dir)[RESOURCE]
            rs_auth = (creds.client_id, creds.client_secret)
            info = (await http.post("/introspect", data={"token": access}, auth=rs_auth)).json()
            assert (info["active"], info["client_id"]) == (True, client_id)
            revoke = await http.post(
                "/revoke",
                data={"token": refreshed.json()["refresh_token"], "client_id": client_id},
            )
            assert revoke.status_code == 200
            info = (await http.post("/introspect", data={"token": access}, auth=rs_auth)).json()
            assert info == {"active": False}
        assert docs.hits == ["/clients/demo.json"]  # cached (max-age=60) for every later step


async def test_without_the_flag_loopback_documents_are_refused(tmp_path: Path) -> None:
    with loopback_document_server() as docs, run_oauth_server(tmp_path) as server:
        assert "WARNING" not in server.program.output()
        http_url = docs.publish("/c.json", document(docs.url("/c.json")))
        port = docs.server.server_address[1]
        _, challenge = pkce()
        cases = {
            http_url: "must be https",
            f"https://127.0.0.1:{port}/c.json": "not resolve to a public address",
            f"https://[::1]:{port}/c.json": "not resolve to a public address",
            "https://169.254.169.254/latest/meta-data/": "not resolve to a public address",
            "https://10.1.2.3/c.json": "not resolve to a public address",
        }
        async with httpx2.AsyncClient(timeout=10) as http:
            for client_id, message in cases.items():
                page = await http.get(_authorization_url(server, client_id, challenge))
                assert page.status_code == 400, client_id
                assert "location" not in page.headers
                assert message in page.text, (client_id, page.text)
        assert docs.hits == []  # nothing was ever fetched
        for address in ("127.0.0.1", "::1", "169.254.169.254", "10.1.2.3"):
            assert f"resolves to non-public {address}" in server.program.output()  # logged only


def test_malformed_credentials_file_exits_2_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "resource-servers.json").write_text("{oops", encoding="utf-8")
    env = {**os.environ, "OAUTH_DATA_DIR": str(data), "OAUTH_DEMO_PASSWORD": "x" * 12}
    done = run_to_exit("oauth.py", ["--port", "0"], env)
    assert done.returncode == 2
    assert done.stderr.startswith("oauth.py: cannot read ")
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
