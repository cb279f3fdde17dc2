"""Mix-up (RFC 9207): our client refuses an authorization response whose `iss` is not its AS."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx2
import pytest

from secure_mcp.client.connection import ClientConnectError, connect
from secure_mcp.client.settings import ClientSettings
from tests.support.client_fakes import RS_URL, FakeAuthServer, running, weather_mcp
from tests.support.flows import Stack
from tests.support.headless import BackgroundBrowser, authorize_headlessly
from tests.support.scripted_browser import ScriptedBrowser

pytestmark = pytest.mark.process


def ignore(line: str) -> None:
    """Discard what the client writes."""


ATTACKER_ISSUER = "http://127.0.0.1:9666"


def with_iss(location: str, iss: str | None) -> str:
    """`location` with its `iss` replaced (None: removed)."""
    parts = urlsplit(location)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "iss"]
    if iss is not None:
        query.append(("iss", iss))
    return parts._replace(query=urlencode(query)).geturl()


@dataclass
class RewritingBrowser(BackgroundBrowser):
    """Signs in on the real pages, then delivers a tampered redirect to the client's listener."""

    stack: Stack
    rewrite: Callable[[str], str]
    delivered: list[str] = field(default_factory=list)

    async def _visit(self, url: str) -> None:
        async with httpx2.AsyncClient(timeout=10) as http:
            location = await authorize_headlessly(
                http, url, username=self.stack.oauth.username, password=self.stack.oauth.password
            )
            tampered = self.rewrite(location)
            self.delivered.append(tampered)
            await http.get(tampered)


def stored_tokens(state_dir: Path) -> dict[str, object]:
    """The token section of the client's state file (empty when none was saved)."""
    path = state_dir / "oauth-state.json"
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text()).get("tokens", {}))


@pytest.mark.parametrize(
    ("iss", "message"),
    [
        pytest.param(ATTACKER_ISSUER, "iss mismatch", id="attacker-iss"),
        pytest.param("{issuer}/", "iss mismatch", id="trailing-slash"),
        pytest.param(None, "missing iss", id="iss-removed"),
    ],
)
async def test_tampered_iss_from_the_real_server_is_refused(
    stack: Stack, tmp_path: Path, iss: str | None, message: str
) -> None:
    value = None if iss is None else iss.format(issuer=stack.oauth.issuer)
    browser = RewritingBrowser(stack, lambda location: with_iss(location, value))
    settings = ClientSettings(state_dir=tmp_path / "client", server_url=stack.weather.url)
    with pytest.raises(ClientConnectError, match=message) as caught:
        async with connect(settings, write=ignore, opener=browser.open):
            pass
    assert caught.value.error == "authorization_failed"
    assert str(caught.value).startswith("Sign-in failed:")
    assert len(browser.delivered) == 1
    assert stored_tokens(settings.state_dir) == {}  # the code was never redeemed


async def test_mixup_with_an_in_process_authorization_server(stack: Stack, tmp_path: Path) -> None:
    # The client talks to one AS; the response claims to come from another (the honest,
    # real oauth.py), as in a mix-up where an attacker relays a victim's response.
    fake_as = FakeAuthServer(iss_override=stack.oauth.issuer)
    browser = ScriptedBrowser()
    settings = ClientSettings(state_dir=tmp_path / "client", server_url=RS_URL)
    async with running(weather_mcp(fake_as), fake_as) as router:
        browser.router = router
        with pytest.raises(ClientConnectError, match="iss mismatch") as caught:
            async with connect(settings, write=ignore, http_transport=router, opener=browser.open):
                pass
    assert caught.value.error == "authorization_failed"
    assert fake_as.tokens == {}  # no code was exchanged
    assert len(browser.opened) == 1
