"""A web page on another origin signs a client in with fetch(), as browser-based MCP clients do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
from playwright.async_api import Browser

from tests.support.browser import loopback_listener
from tests.support.headless import authorize_headlessly
from tests.support.oauth_harness import RESOURCE, Flow, authorization_query, pkce, query_of
from tests.support.oauth_server import run_oauth_server

pytestmark = pytest.mark.browser

DISCOVER_AND_REGISTER = """
async ({issuer, redirect}) => {
  const meta = await fetch(issuer + "/.well-known/oauth-authorization-server",
                           {headers: {"MCP-Protocol-Version": "2026-07-28"}});
  const metadata = await meta.json();
  const registered = await fetch(metadata.registration_endpoint, {
    method: "POST",
    headers: {"Content-Type": "application/json", "MCP-Protocol-Version": "2026-07-28"},
    body: JSON.stringify({
      redirect_uris: [redirect],
      token_endpoint_auth_method: "client_secret_basic",
      grant_types: ["authorization_code", "refresh_token"],
      client_name: "Browser-based client",
      scope: "weather:read offline_access",
    }),
  });
  return {metadata, status: registered.status, client: await registered.json()};
}
"""

REDEEM_AND_REVOKE = """
async ({metadata, client, code, verifier, resource}) => {
  const basic = "Basic " + btoa(encodeURIComponent(client.client_id) + ":" +
                                encodeURIComponent(client.client_secret));
  const form = {"Authorization": basic, "Content-Type": "application/x-www-form-urlencoded"};
  const token = await fetch(metadata.token_endpoint, {
    method: "POST", headers: form,
    body: new URLSearchParams({grant_type: "authorization_code", code,
                               code_verifier: verifier, resource}),
  });
  const tokens = await token.json();
  const wrong = await fetch(metadata.token_endpoint, {
    method: "POST", headers: form, body: new URLSearchParams({grant_type: "refresh_token"}),
  });
  const revoke = await fetch(metadata.revocation_endpoint, {
    method: "POST", headers: form,
    body: new URLSearchParams({token: tokens.refresh_token, token_type_hint: "refresh_token"}),
  });
  return {status: token.status, tokens, wrong: await wrong.json(), revoked: revoke.status};
}
"""

BLOCKED = """
async ({metadata}) => {
  const attempts = {
    introspect: () => fetch(metadata.introspection_endpoint, {
      method: "POST", body: new URLSearchParams({token: "x"})}),
    authorize: () => fetch(metadata.authorization_endpoint + "?client_id=x"),
  };
  const results = {};
  for (const [name, attempt] of Object.entries(attempts)) {
    try { await attempt(); results[name] = "readable"; }
    catch (error) { results[name] = error.name; }
  }
  return results;
}
"""


async def test_a_page_on_another_origin_signs_in_with_fetch(
    tmp_path: Path, chromium: Browser
) -> None:
    with run_oauth_server(tmp_path) as server, loopback_listener() as (redirect_uri, _):
        page = await chromium.new_page()
        await page.goto(redirect_uri.replace("/callback", "/app"))  # http://127.0.0.1:<other>
        found: dict[str, Any] = await page.evaluate(
            DISCOVER_AND_REGISTER, {"issuer": server.issuer, "redirect": redirect_uri}
        )
        assert found["metadata"]["issuer"] == server.issuer
        assert found["status"] == 201, found
        assert found["client"]["scope"] == "weather:read"  # offline_access ignored
        client = found["client"]
        verifier, challenge = pkce()
        flow = Flow(client, verifier, challenge, redirect_uri=redirect_uri)
        query = authorization_query(flow, RESOURCE, state=None, scope=None)
        async with httpx2.AsyncClient(timeout=10) as http:
            location = await authorize_headlessly(
                http,
                f"{server.issuer}/authorize?{query}",
                username=server.username,
                password=server.password,
            )
            args = {
                "metadata": found["metadata"],
                "client": client,
                "code": query_of(location)["code"],
                "verifier": verifier,
                "resource": RESOURCE,
            }
            result: dict[str, Any] = await page.evaluate(REDEEM_AND_REVOKE, args)
            assert result["status"] == 200, result
            assert result["wrong"]["error"] == "invalid_request"  # the page can read errors
            assert result["revoked"] == 200
            introspected = await http.post(
                f"{server.issuer}/introspect",
                data={"token": result["tokens"]["access_token"]},
                auth=_resource_auth(server.data_dir),
            )
            assert introspected.json() == {"active": False}  # the revocation took effect
        blocked = await page.evaluate(BLOCKED, {"metadata": found["metadata"]})
        assert blocked == {"introspect": "TypeError", "authorize": "TypeError"}


def _resource_auth(data_dir: Path) -> tuple[str, str]:
    """The resource server's introspection credentials."""
    from secure_mcp.common.resource_credentials import load_all

    credentials = load_all(data_dir)[RESOURCE]
    return credentials.client_id, credentials.client_secret
