"""connect() with --client-metadata-url: the URL is the client_id where CIMD is advertised.

Against our real authorization server and weather server in process (the document served by an
in-process document host behind a fake public DNS name), and against the conformance-style fake
authorization server that does not advertise CIMD (dynamic registration is the fallback).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from secure_mcp.client.auth.storage import STATE_FILE, FileTokenStorage
from secure_mcp.client.connection import ClientConnectError, connect
from secure_mcp.client.settings import ClientSettings
from secure_mcp.common.resource_credentials import ResourceCredentials
from secure_mcp.oauth.app import build_app as build_oauth_app
from secure_mcp.oauth.cimd_fetch import FetchSeams
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.weather.app import Seams as WeatherSeams
from secure_mcp.weather.app import build_app as build_weather_app
from secure_mcp.weather.settings import WeatherSettings
from tests.client.test_connection import expire_stored_tokens
from tests.support.cimd_server import DocumentHost, FakeResolver, document
from tests.support.client_fakes import (
    RS_ORIGIN,
    RS_URL,
    FakeAuthServer,
    Router,
    running,
    weather_mcp,
)
from tests.support.headless import authorize_headlessly
from tests.support.oauth_server import TEST_PASSWORD, TEST_USERNAME
from tests.support.scripted_browser import ScriptedBrowser

ISSUER = "http://127.0.0.1:9000"
DOC_URL = "https://app.example/clients/weather-cli.json"
RS_CREDENTIALS = ResourceCredentials("weather-rs", "rs-secret-for-tests")
CLIENT_NAME = "Weather CLI (metadata document)"


def quiet(line: str) -> None:
    """Discard what the client writes."""


@dataclass
class Stack:
    """Our oauth app and weather app in process, the document host, and a headless browser."""

    router: Router
    documents: DocumentHost
    pages: list[str] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    visits: list[asyncio.Task[None]] = field(default_factory=list)

    def open(self, url: str) -> bool:
        """`webbrowser.open`: sign in on the real pages in the background, like a person."""
        self.opened.append(url)
        self.visits.append(asyncio.get_running_loop().create_task(self._visit(url)))
        return True

    async def _visit(self, url: str) -> None:
        async def keep(response: httpx2.Response) -> None:
            await response.aread()
            self.pages.append(response.text)

        hooks = {"response": [keep]}
        async with httpx2.AsyncClient(transport=self.router, event_hooks=hooks) as http:
            location = await authorize_headlessly(
                http, url, username=TEST_USERNAME, password=TEST_PASSWORD
            )
        async with httpx2.AsyncClient() as listener:  # the client's real loopback listener
            await listener.get(location)

    async def introspect(self, token: str) -> dict[str, object]:
        """What the authorization server says about `token` (as the weather resource server)."""
        auth = (RS_CREDENTIALS.client_id, RS_CREDENTIALS.client_secret)
        async with httpx2.AsyncClient(transport=self.router) as http:
            answer = await http.post(f"{ISSUER}/introspect", data={"token": token}, auth=auth)
        result: dict[str, object] = answer.json()
        return result

    def requests_to(self, path: str) -> list[str]:
        """The client's requests (and the browser's) to `path` on the authorization server."""
        return [r for r in self.router.requests if r.split(" ", 1)[1].startswith(ISSUER + path)]


@asynccontextmanager
async def our_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """oauth + weather (NWS replayed) in process; the document at DOC_URL on a public address."""
    documents = DocumentHost()
    documents.serve(
        "/clients/weather-cli.json",
        document(DOC_URL, client_name=CLIENT_NAME, redirect_uris=["http://127.0.0.1/callback"]),
        headers={"content-type": "application/json", "cache-control": "max-age=600"},
    )
    oauth_settings = OAuthSettings(
        data_dir=tmp_path / "oauth-data",
        issuer=ISSUER,
        resources=(RS_URL,),
        scopes=("weather:read",),
        demo_username=TEST_USERNAME,
        demo_password=TEST_PASSWORD,
        introspection_credentials=RS_CREDENTIALS,
    )
    resolver = FakeResolver({"app.example": ["93.184.215.14"]})
    oauth_app = build_oauth_app(
        oauth_settings, FetchSeams(resolver=resolver, transport=documents.transport())
    )
    weather_settings = WeatherSettings(
        auth_server=ISSUER,
        resource_url=RS_URL,
        nws_replay=True,
        introspection_cache_ttl=0,
        credentials=RS_CREDENTIALS,
    )
    introspection = httpx2.ASGITransport(app=oauth_app)
    weather_app = build_weather_app(
        weather_settings, seams=WeatherSeams(introspection_transport=introspection)
    )
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(oauth_app.router.lifespan_context(oauth_app))
        await stack.enter_async_context(weather_app.router.lifespan_context(weather_app))
        yield Stack(Router({ISSUER: oauth_app, RS_ORIGIN: weather_app}), documents)


def client_settings(tmp_path: Path) -> ClientSettings:
    """The client with --client-metadata-url, state in tmp_path."""
    return ClientSettings(
        state_dir=tmp_path / "client", server_url=RS_URL, client_metadata_url=DOC_URL
    )


async def test_document_url_is_the_client_id_and_nothing_is_registered(tmp_path: Path) -> None:
    settings = client_settings(tmp_path)
    lines: list[str] = []
    async with our_stack(tmp_path) as stack:
        async with connect(
            settings, write=lines.append, http_transport=stack.router, opener=stack.open
        ) as session:
            result = await session.call_tool("get_alerts", {"state": "CA"})
        await asyncio.gather(*stack.visits)
        assert not result.is_error, result.content
        assert len(stack.opened) == 1
        assert parse_qs(urlsplit(stack.opened[0]).query)["client_id"] == [DOC_URL]
        assert stack.requests_to("/register") == []  # CIMD instead of RFC 7591
        assert [r.url.path for r in stack.documents.requests] == ["/clients/weather-cli.json"]

        consent = next(page for page in stack.pages if 'name="decision"' in page)
        assert CLIENT_NAME in consent
        assert "a metadata document published at <code>app.example</code>" in consent
        # The document lives elsewhere but sends the code to this machine: the page says so.
        assert "<strong>Warning:</strong>" in consent
        assert "sends you back to <code>127.0.0.1:" in consent

        storage = FileTokenStorage(settings.state_dir, RS_URL)
        [(_, _, client)] = storage.all_tokens()  # kept with its tokens, not as a registration
        assert client is not None
        assert client.client_id == DOC_URL
        assert storage.registration(ISSUER) is None
        tokens = await storage.get_tokens()
        assert tokens is not None
        introspected = await stack.introspect(tokens.access_token)
        assert (introspected["active"], introspected["client_id"]) == (True, DOC_URL)
        assert introspected["aud"] == RS_URL


async def test_restart_reuses_the_url_client_and_refreshes_as_it(tmp_path: Path) -> None:
    settings = client_settings(tmp_path)
    async with our_stack(tmp_path) as stack:
        async with connect(settings, write=quiet, http_transport=stack.router, opener=stack.open):
            pass
        await asyncio.gather(*stack.visits)
        state_file = settings.state_dir / STATE_FILE
        state = json.loads(state_file.read_text(encoding="utf-8"))
        before = state["tokens"][ISSUER][RS_URL]
        before["expires_at"] = 0  # as if the client had been stopped for hours
        state_file.write_text(json.dumps(state), encoding="utf-8")

        async with connect(
            settings, write=quiet, http_transport=stack.router, opener=stack.open
        ) as session:
            result = await session.call_tool("get_alerts", {"state": "CA"})
        assert not result.is_error, result.content
        assert len(stack.opened) == 1  # no second sign-in: the refresh worked
        refreshed = await FileTokenStorage(settings.state_dir, RS_URL).get_tokens()
        assert refreshed is not None
        assert refreshed.access_token != before["token"]["access_token"]
        assert (await stack.introspect(refreshed.access_token))["client_id"] == DOC_URL
        assert stack.requests_to("/register") == []
        assert len(stack.documents.requests) == 1  # cached per max-age


async def test_without_cimd_support_the_client_registers(tmp_path: Path) -> None:
    fake_as = FakeAuthServer(cimd_supported=False)
    browser = ScriptedBrowser()
    settings = client_settings(tmp_path)
    async with running(weather_mcp(fake_as), fake_as) as router:
        browser.router = router
        async with connect(
            settings, write=quiet, http_transport=router, opener=browser.open
        ) as session:
            result = await session.call_tool("get_alerts", {"state": "CA"})
    assert not result.is_error
    assert fake_as.log.count("POST /register") == 1
    (registered,) = fake_as.registrations.values()
    assert registered["client_id"] != DOC_URL
    assert registered["token_endpoint_auth_method"] == "none"
    assert fake_as.authorize_params[0]["client_id"] == registered["client_id"]
    assert {grant.client_id for grant in fake_as.tokens.values()} == {registered["client_id"]}


async def test_with_cimd_support_the_fake_server_sees_only_the_url(tmp_path: Path) -> None:
    fake_as = FakeAuthServer(cimd_supported=True)
    browser = ScriptedBrowser()
    settings = client_settings(tmp_path)
    async with running(weather_mcp(fake_as), fake_as) as router:
        browser.router = router
        async with connect(
            settings, write=quiet, http_transport=router, opener=browser.open
        ) as session:
            assert [tool.name for tool in await session.list_tools()] == ["get_alerts"]
    assert fake_as.registrations == {}
    assert "POST /register" not in fake_as.log
    assert fake_as.authorize_params[0]["client_id"] == DOC_URL
    assert {grant.client_id for grant in fake_as.tokens.values()} == {DOC_URL}


@pytest.mark.parametrize(
    "url", ["http://app.example/client.json", "https://app.example/", "https://app.example"]
)
async def test_unusable_metadata_url_is_refused_before_any_request(
    url: str, tmp_path: Path
) -> None:
    settings = dataclasses.replace(client_settings(tmp_path), client_metadata_url=url)
    router = Router({})
    with pytest.raises(ClientConnectError, match="must be an https URL with a path") as caught:
        async with connect(settings, write=quiet, http_transport=router):
            pass  # pragma: no cover - never reached
    assert caught.value.error == "invalid_client"
    assert router.requests == []


async def test_a_changed_metadata_url_is_used_at_the_next_sign_in(tmp_path: Path) -> None:
    fake_as = FakeAuthServer(cimd_supported=True)
    browser = ScriptedBrowser()
    first = client_settings(tmp_path)
    moved = dataclasses.replace(first, client_metadata_url="https://app.example/v2/client.json")
    async with running(weather_mcp(fake_as), fake_as) as router:
        browser.router = router
        async with connect(first, write=quiet, http_transport=router, opener=browser.open):
            pass
        FileTokenStorage(first.state_dir, RS_URL).delete_tokens()  # sign in again below
        async with connect(moved, write=quiet, http_transport=router, opener=browser.open):
            pass
    assert [p["client_id"] for p in fake_as.authorize_params] == [
        DOC_URL,
        "https://app.example/v2/client.json",
    ]


async def test_tokens_of_a_former_metadata_url_are_not_refreshed_as_it(tmp_path: Path) -> None:
    """Tokens issued to the old document URL stay with it; a new sign-in uses the new one."""
    fake_as = FakeAuthServer(cimd_supported=True)
    browser = ScriptedBrowser()
    first = client_settings(tmp_path)
    moved = dataclasses.replace(first, client_metadata_url="https://app.example/v2/client.json")
    async with running(weather_mcp(fake_as), fake_as) as router:
        browser.router = router
        async with connect(first, write=quiet, http_transport=router, opener=browser.open):
            pass
        expire_stored_tokens(first.state_dir)  # kept, but in need of a refresh
        fake_as.log.clear()
        async with connect(moved, write=quiet, http_transport=router, opener=browser.open):
            pass
    assert "POST /token refresh_token" not in fake_as.log
    assert [p["client_id"] for p in fake_as.authorize_params] == [
        DOC_URL,
        "https://app.example/v2/client.json",
    ]
