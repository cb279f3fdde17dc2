"""Our client with --client-metadata-url against the real oauth.py and weather.py processes.

The metadata document is a static JSON file on a real https server on 127.0.0.1 whose
certificate comes from a throwaway CA; oauth.py trusts that CA through --cimd-ca-file (TLS is
still verified) and reaches loopback through the development flag --cimd-allow-insecure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from secure_mcp.client.auth.storage import FileTokenStorage
from secure_mcp.client.connection import logout_stored
from secure_mcp.client.settings import ClientSettings
from tests.support.cimd_server import (
    document,
    loopback_document_server,
    make_certificates,
    server_tls,
)
from tests.support.cimd_stack import (
    CLIENT_NAME,
    DOCUMENT_PATH,
    CimdStack,
    introspect,
    run_cimd_stack,
)
from tests.support.headless import HeadlessBrowser, use_weather

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def cimd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CimdStack]:
    """One set of servers for the module."""
    with run_cimd_stack(tmp_path_factory.mktemp("client-cimd")) as running:
        yield running


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
