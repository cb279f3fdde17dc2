"""Our client with --client-metadata-url against the real oauth.py and weather.py processes.

The metadata document is a static JSON file on a real https server on 127.0.0.1 whose
certificate comes from a throwaway CA; oauth.py trusts that CA through --cimd-ca-file (TLS is
still verified) and reaches loopback through the development flag --cimd-allow-insecure.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from secure_mcp.client.auth.storage import FileTokenStorage
from secure_mcp.client.connection import connect, logout_stored
from secure_mcp.client.settings import ClientSettings
from secure_mcp.common.resource_credentials import load_all
from tests.e2e.test_client_oauth_process import Stack, run_stack
from tests.support.cimd_server import (
    LoopbackDocumentServer,
    document,
    loopback_document_server,
    make_certificates,
    server_tls,
)
from tests.support.headless import authorize_headlessly
from tests.support.oauth_server import OAuthServer

pytestmark = pytest.mark.process

CLIENT_NAME = "Weather CLI (metadata document)"
DOCUMENT_PATH = "/clients/weather-cli.json"


def quiet(line: str) -> None:
    """Discard what the client writes."""


@dataclass
class CimdStack:
    """The document server, oauth.py (trusting its CA) and weather.py."""

    docs: LoopbackDocumentServer
    url: str  # the client_id: the document's https URL
    stack: Stack


@contextlib.contextmanager
def run_cimd_stack(tmp_path: Path) -> Iterator[CimdStack]:
    """Publish the document over https on 127.0.0.1, then start oauth.py and weather.py."""
    certs = make_certificates(str(tmp_path), "localhost", ("127.0.0.1",))
    with loopback_document_server(server_tls(certs)) as docs:
        url = docs.url(DOCUMENT_PATH)
        docs.publish(
            DOCUMENT_PATH,
            document(url, client_name=CLIENT_NAME, redirect_uris=["http://127.0.0.1/callback"]),
        )
        oauth_env = {"OAUTH_CIMD_ALLOW_INSECURE": "1", "OAUTH_CIMD_CA_FILE": certs.ca_file}
        with run_stack(tmp_path, **oauth_env) as stack:
            yield CimdStack(docs, url, stack)


@pytest.fixture(scope="module")
def cimd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CimdStack]:
    """One set of servers for the module."""
    with run_cimd_stack(tmp_path_factory.mktemp("client-cimd")) as running:
        yield running


@dataclass
class HeadlessBrowser:
    """`webbrowser.open` that signs in on the real pages, keeping every page it saw."""

    oauth: OAuthServer
    opened: list[str] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)
    visits: list[asyncio.Task[None]] = field(default_factory=list)

    def open(self, url: str) -> bool:
        """Start the visit in the background, as a real browser would."""
        self.opened.append(url)
        self.visits.append(asyncio.get_running_loop().create_task(self._visit(url)))
        return True

    async def _visit(self, url: str) -> None:
        async def keep(response: httpx2.Response) -> None:
            await response.aread()
            self.pages.append(response.text)

        async with httpx2.AsyncClient(timeout=10, event_hooks={"response": [keep]}) as http:
            location = await authorize_headlessly(
                http, url, username=self.oauth.username, password=self.oauth.password
            )
            assert location.startswith("http://127.0.0.1:")
            await http.get(location)  # the client's loopback listener

    def consent_page(self) -> str:
        """The consent page shown during the sign-in."""
        return next(page for page in self.pages if 'name="decision"' in page)


async def use_weather(settings: ClientSettings, browser: HeadlessBrowser) -> None:
    """One client run: connect, list the tools, call get_alerts."""
    async with connect(settings, write=quiet, opener=browser.open) as session:
        assert "get_alerts" in {tool.name for tool in await session.list_tools()}
        result = await session.call_tool("get_alerts", {"state": "CA"})
        assert not result.is_error, result.content
    await asyncio.gather(*browser.visits)


async def introspect(stack: Stack, token: str) -> dict[str, object]:
    """Ask oauth.py about `token` as the weather resource server (RFC 7662)."""
    creds = load_all(stack.oauth.data_dir)[stack.weather.url]
    async with httpx2.AsyncClient(timeout=10) as http:
        answer = await http.post(
            f"{stack.oauth.issuer}/introspect",
            data={"token": token},
            auth=(creds.client_id, creds.client_secret),
        )
    result: dict[str, object] = answer.json()
    return result


def settings_for(tmp_path: Path, cimd: CimdStack) -> ClientSettings:
    """A fresh client state folder, with --client-metadata-url."""
    return ClientSettings(
        state_dir=tmp_path / "client-state",
        server_url=cimd.stack.weather.url,
        client_metadata_url=cimd.url,
    )


async def test_document_client_signs_in_without_registering(
    tmp_path: Path, cimd: CimdStack
) -> None:
    stack = cimd.stack
    assert "extra CA certificates for documents:" in stack.oauth.program.output()
    browser = HeadlessBrowser(stack.oauth)
    settings = settings_for(tmp_path, cimd)
    await use_weather(settings, browser)

    assert len(browser.opened) == 1
    assert parse_qs(urlsplit(browser.opened[0]).query)["client_id"] == [cimd.url]
    consent = browser.consent_page()
    assert CLIENT_NAME in consent
    assert "a metadata document published at <code>127.0.0.1</code>" in consent
    assert "Warning:" not in consent  # document and redirect are both on this machine
    assert "You can close this tab" in browser.pages[-1]

    storage = FileTokenStorage(settings.state_dir, stack.weather.url)
    [(_, _, client)] = storage.all_tokens()  # kept with its tokens, not as a registration
    assert client is not None
    assert client.client_id == cimd.url
    tokens = await storage.get_tokens()
    assert tokens is not None
    info = await introspect(stack, tokens.access_token)
    assert (info["active"], info["client_id"], info["aud"]) == (True, cimd.url, stack.weather.url)

    log = stack.oauth.program.output()
    assert '"POST /token HTTP/1.1" 200' in log  # the access log is on, so this proves it:
    assert "/register" not in log  # no RFC 7591 registration at any point
    assert cimd.docs.hits == [DOCUMENT_PATH]  # fetched once over verified TLS, then cached

    await use_weather(settings, browser)  # a second run: stored tokens, no browser
    assert len(browser.opened) == 1


async def test_logout_revokes_as_the_document_client(tmp_path: Path, cimd: CimdStack) -> None:
    browser = HeadlessBrowser(cimd.stack.oauth)
    settings = settings_for(tmp_path, cimd)
    await use_weather(settings, browser)
    tokens = await FileTokenStorage(settings.state_dir, cimd.stack.weather.url).get_tokens()
    assert tokens is not None
    assert (await introspect(cimd.stack, tokens.access_token))["active"] is True
    lines: list[str] = []
    assert await logout_stored(settings, write=lines.append)
    assert lines == [f"Signed out of {cimd.stack.weather.url}."]
    assert await introspect(cimd.stack, tokens.access_token) == {"active": False}


async def test_a_document_behind_an_untrusted_certificate_is_refused(
    tmp_path: Path, cimd: CimdStack
) -> None:
    """The extra CA adds trust; it does not turn verification off."""
    other_ca = make_certificates(str(tmp_path), "localhost", ("127.0.0.1",))
    with loopback_document_server(server_tls(other_ca)) as docs:
        url = docs.publish(DOCUMENT_PATH, document(docs.url(DOCUMENT_PATH)))
        authorize = httpx2.URL(
            f"{cimd.stack.oauth.issuer}/authorize",
            params={
                "response_type": "code",
                "client_id": url,
                "redirect_uri": "http://127.0.0.1:33333/callback",
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
                "state": "s1",
                "resource": cimd.stack.weather.url,
            },
        )
        async with httpx2.AsyncClient(timeout=10) as http:
            page = await http.get(authorize)
    assert page.status_code == 400
    assert "location" not in page.headers
    assert "could not be fetched (ConnectError)" in page.text
    assert docs.hits == []  # the TLS handshake failed before any request
