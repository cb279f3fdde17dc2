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
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from secure_mcp.client.auth.storage import STATE_FILE, FileTokenStorage
from secure_mcp.client.connection import ClientConnectError, connect
from secure_mcp.client.settings import ClientSettings
from tests.support.cimd_server import DocumentHost, document
from tests.support.client_fakes import (
    RS_URL,
    FakeAuthServer,
    Router,
    expire_stored_tokens,
    running,
    weather_mcp,
)
from tests.support.in_process_stack import ISSUER, InProcessStack, in_process_stack
from tests.support.scripted_browser import ScriptedBrowser, connected

DOC_URL = "https://app.example/clients/weather-cli.json"
CLIENT_NAME = "Weather CLI (metadata document)"
MOVED_URL = "https://app.example/v2/client.json"


def quiet(line: str) -> None:
    """Discard what the client writes."""


@asynccontextmanager
async def our_stack(tmp_path: Path) -> AsyncIterator[InProcessStack]:
    """oauth + weather (NWS replayed) in process; the document at DOC_URL on a public address."""
    documents = DocumentHost()
    documents.serve(
        "/clients/weather-cli.json",
        document(DOC_URL, client_name=CLIENT_NAME, redirect_uris=["http://127.0.0.1/callback"]),
        headers={"content-type": "application/json", "cache-control": "max-age=600"},
    )
    public = {"app.example": ["93.184.215.14"]}
    async with in_process_stack(tmp_path, documents=documents, document_hosts=public) as stack:
        yield stack


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
    async with connected(settings, fake_as, browser, quiet) as session:
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
    async with connected(settings, fake_as, browser, quiet) as session:
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


@dataclasses.dataclass
class Moved:
    """Signed in once at DOC_URL against the fake AS; `moved` names the document's new URL."""

    fake_as: FakeAuthServer
    first: ClientSettings
    moved: ClientSettings
    router: Router
    browser: ScriptedBrowser

    async def connect_moved(self) -> None:
        """connect() once with the moved document URL."""
        async with connect(
            self.moved, write=quiet, http_transport=self.router, opener=self.browser.open
        ):
            pass


@asynccontextmanager
async def signed_in_then_moved(tmp_path: Path) -> AsyncIterator[Moved]:
    """The fake AS (CIMD advertised) running, one sign-in done at DOC_URL, the document moved."""
    fake_as = FakeAuthServer(cimd_supported=True)
    browser = ScriptedBrowser()
    first = client_settings(tmp_path)
    moved = dataclasses.replace(first, client_metadata_url=MOVED_URL)
    async with running(weather_mcp(fake_as), fake_as) as router:
        browser.router = router
        async with connect(first, write=quiet, http_transport=router, opener=browser.open):
            pass
        yield Moved(fake_as, first, moved, router, browser)


async def test_a_changed_metadata_url_is_used_at_the_next_sign_in(tmp_path: Path) -> None:
    async with signed_in_then_moved(tmp_path) as m:
        FileTokenStorage(m.first.state_dir, RS_URL).delete_tokens()  # sign in again below
        await m.connect_moved()
    assert [p["client_id"] for p in m.fake_as.authorize_params] == [DOC_URL, MOVED_URL]


async def test_tokens_of_a_former_metadata_url_are_not_refreshed_as_it(tmp_path: Path) -> None:
    """Tokens issued to the old document URL stay with it; a new sign-in uses the new one."""
    async with signed_in_then_moved(tmp_path) as m:
        expire_stored_tokens(m.first.state_dir)  # kept, but in need of a refresh
        m.fake_as.log.clear()
        await m.connect_moved()
    assert "POST /token refresh_token" not in m.fake_as.log
    assert [p["client_id"] for p in m.fake_as.authorize_params] == [DOC_URL, MOVED_URL]
