"""weather.py against the real authorization server in process: credentials, canonical resources,
and the https rule for its own settings."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from secure_mcp.common.resource_credentials import ResourceCredentials, save_all
from secure_mcp.weather.app import startup_banner
from secure_mcp.weather.errors import InvalidTokenError
from secure_mcp.weather.rfc7662 import IntrospectionVerifier
from secure_mcp.weather.settings import SettingsError, settings_from
from tests.support.oauth_harness import RESOURCE, Harness
from tests.support.oauth_server import IN_PROCESS_ISSUER, running_oauth_app

ENV_CREDS = {"INTROSPECTION_CLIENT_ID": "rs", "INTROSPECTION_CLIENT_SECRET": "s3cret"}


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [
        pytest.param("rs", "per%cent", id="percent"),
        pytest.param("rs", "pl+us", id="plus"),
        pytest.param("rs", "co:lon", id="colon"),
        pytest.param("rs", "spa ce", id="space"),
        pytest.param("rs", "nön-äscii-秘密", id="non-ascii"),
        pytest.param("r s:+%é", "%2B+: x", id="all-in-the-id-too"),
    ],
)
async def test_introspection_credentials_are_form_encoded(
    tmp_path: Path, client_id: str, secret: str
) -> None:
    credentials = ResourceCredentials(client_id, secret)
    async with running_oauth_app(tmp_path, introspection_credentials=credentials) as (app, s):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=s.issuer) as http:
            oauth = Harness(app, s, http)
            token = (await oauth.redeem(await oauth.new_flow())).json()["access_token"]
        verifier = IntrospectionVerifier(
            issuer=IN_PROCESS_ISSUER,
            resource=RESOURCE,
            credentials=credentials,
            cache_ttl=0,
            cache_size=10,
            transport=transport,
        )
        try:
            access = await verifier.check(token)  # before the fix: 503, every token refused
            assert access.resource == RESOURCE
            with pytest.raises(InvalidTokenError):
                await verifier.check("not-a-token")
        finally:
            await verifier.aclose()


async def test_audience_differing_in_scheme_or_host_case_is_accepted(tmp_path: Path) -> None:
    async with running_oauth_app(tmp_path) as (app, s):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=s.issuer) as http:
            oauth = Harness(app, s, http)
            token = (await oauth.redeem(await oauth.new_flow())).json()["access_token"]
        id_, secret = oauth.resource_auth()
        verifier = IntrospectionVerifier(
            issuer=IN_PROCESS_ISSUER,
            resource="HTTP://127.0.0.1:8000/mcp",  # as configured by hand, not canonical
            credentials=ResourceCredentials(id_, secret),
            cache_ttl=0,
            cache_size=10,
            transport=transport,
        )
        try:
            assert (await verifier.check(token)).client_id
        finally:
            await verifier.aclose()


def test_resource_url_is_kept_canonical(tmp_path: Path) -> None:
    mine = ResourceCredentials("weather", "y")
    save_all(tmp_path, {"https://weather.example/mcp": mine})
    argv = ["--resource-url", "HTTPS://Weather.Example:443/mcp", "--oauth-data-dir", str(tmp_path)]
    settings = settings_from([*argv, "--auth-server", "https://as.example"], {})
    assert settings.resource_url == "https://weather.example/mcp"
    assert settings.credentials == mine  # oauth.py writes its entry under the canonical URL


INSECURE = [
    pytest.param(["--auth-server", "http://as.example"], "--auth-server", id="issuer"),
    pytest.param(["--resource-url", "http://weather.example/mcp"], "--resource-url", id="resource"),
    pytest.param(["--host", "192.168.1.5"], "--resource-url", id="lan-host-default-resource"),
]


@pytest.mark.parametrize(("argv", "flag"), INSECURE)
def test_plain_http_off_loopback_is_refused(argv: list[str], flag: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from(argv, ENV_CREDS)
    message = str(caught.value)
    assert "\n" not in message
    assert flag in message
    assert "must be https" in message
    assert "--allow-insecure-http" in message


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        pytest.param(["--allow-insecure-http"], {}, id="flag"),
        pytest.param([], {"WEATHER_ALLOW_INSECURE_HTTP": "1"}, id="env"),
    ],
)
def test_development_flag_allows_plain_http_with_a_loud_banner(
    argv: list[str], env: dict[str, str]
) -> None:
    argv = [*argv, "--auth-server", "http://as.example", "--host", "192.168.1.5"]
    settings = settings_from(argv, {**ENV_CREDS, **env})
    assert settings.allow_insecure_http
    assert settings.resource_url == "http://192.168.1.5:8000/mcp"
    lines = startup_banner(settings)
    assert any("--allow-insecure-http / WEATHER_ALLOW_INSECURE_HTTP" in line for line in lines)
    assert sum("!" * 60 in line for line in lines) >= 2


def test_loopback_http_needs_no_flag() -> None:
    settings = settings_from(["--auth-server", "http://[::1]:8003"], ENV_CREDS)
    assert not settings.allow_insecure_http
    assert not any("insecure" in line.lower() for line in startup_banner(settings))


async def test_protected_resource_metadata_is_open_to_browser_clients(
    weather: httpx2.AsyncClient,
) -> None:
    path = "/.well-known/oauth-protected-resource/mcp"
    preflight = await weather.options(
        path,
        headers={
            "Origin": "https://inspector.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "mcp-protocol-version",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "mcp-protocol-version" in preflight.headers["access-control-allow-headers"].lower()
    answer = await weather.get(path, headers={"Origin": "https://inspector.example"})
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer.headers
