"""Complete an authorization request without a browser: the real login and consent form POSTs.

`authorize_headlessly` drives one request; `HeadlessBrowser` is the `webbrowser.open` the client
is given in the real-process tests (it signs in on the real pages, then returns to the client's
loopback listener); `use_weather` is one client run against weather.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import httpx2

from secure_mcp.client.connection import connect

if TYPE_CHECKING:
    from secure_mcp.client.settings import ClientSettings
    from tests.support.oauth_server import OAuthServer

MAX_STEPS = 8


class _FormParser(HTMLParser):
    """Collects the first form's action, its hidden inputs and its input names."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.hidden: dict[str, str] = {}
        self.names: set[str] = set()
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action", "")
            self._in_form = True
        elif tag in {"input", "button"} and self._in_form and values.get("name"):
            self.names.add(values["name"])
            if values.get("type") == "hidden":
                self.hidden[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def _origin(url: str) -> tuple[str, str]:
    """Scheme and host:port of `url`."""
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _form_data(page: _FormParser, username: str, password: str, decision: str) -> dict[str, str]:
    """What a user would submit on this page."""
    data = dict(page.hidden)
    if "password" in page.names:
        data.update(username=username, password=password)
    elif "decision" in page.names:
        data["decision"] = decision
    else:
        raise AssertionError(f"unexpected form with fields {sorted(page.names)}")
    return data


async def authorize_headlessly(
    client: httpx2.AsyncClient,
    authorization_url: str,
    *,
    username: str,
    password: str,
    decision: str = "allow",
) -> str:
    """Sign in and decide on consent; return the final Location (the client's redirect URI)."""
    origin = _origin(authorization_url)
    response = await client.get(authorization_url, follow_redirects=False)
    for _ in range(MAX_STEPS):
        url = str(response.url)
        if response.is_redirect:
            location = urljoin(url, response.headers["location"])
            if _origin(location) != origin:
                return location
            response = await client.get(location, follow_redirects=False)
            continue
        if response.status_code != 200 or "<form" not in response.text:
            raise AssertionError(f"authorization stopped: {response.status_code} {response.text}")
        page = _FormParser()
        page.feed(response.text)
        data = _form_data(page, username, password, decision)
        response = await client.post(
            urljoin(url, page.action or url), data=data, follow_redirects=False
        )
        if "password" in page.names and not response.is_redirect:
            raise AssertionError(f"login failed: {response.status_code} {response.text}")
    raise AssertionError(f"authorization did not finish in {MAX_STEPS} steps")


@dataclass
class BackgroundBrowser:
    """A `webbrowser.open` that visits in the background, keeping every URL and page.

    A subclass says what a visit does (`_visit`), hooking `keep` into its HTTP client.
    """

    opened: list[str] = field(default_factory=list, kw_only=True)
    pages: list[str] = field(default_factory=list, kw_only=True)
    visits: list[asyncio.Task[None]] = field(default_factory=list, kw_only=True)

    def open(self, url: str) -> bool:
        """Start the visit in the background, as a real browser would."""
        self.opened.append(url)
        self.visits.append(asyncio.get_running_loop().create_task(self._visit(url)))
        return True

    async def keep(self, response: httpx2.Response) -> None:
        """A response hook: keep the page."""
        await response.aread()
        self.pages.append(response.text)

    async def _visit(self, url: str) -> None:
        raise NotImplementedError


@dataclass
class HeadlessBrowser(BackgroundBrowser):
    """`webbrowser.open` that signs in on the real pages, keeping every page it saw.

    The last page of a visit is the client's loopback listener's answer.
    """

    oauth: OAuthServer

    async def _visit(self, url: str) -> None:
        async with httpx2.AsyncClient(timeout=10, event_hooks={"response": [self.keep]}) as http:
            location = await authorize_headlessly(
                http, url, username=self.oauth.username, password=self.oauth.password
            )
            assert location.startswith("http://127.0.0.1:")
            await http.get(location)  # the client's loopback listener

    def consent_page(self) -> str:
        """The consent page shown during the sign-in."""
        return next(page for page in self.pages if 'name="decision"' in page)


async def use_weather(
    settings: ClientSettings, browser: HeadlessBrowser, lines: list[str] | None = None
) -> None:
    """One client run (its output kept in `lines`): connect, list the tools, call get_alerts."""
    write: Callable[[str], None] = (lambda line: None) if lines is None else lines.append
    async with connect(settings, write=write, opener=browser.open) as session:
        assert "get_alerts" in {tool.name for tool in await session.list_tools()}
        result = await session.call_tool("get_alerts", {"state": "CA"})
        assert not result.is_error, result.content
    await asyncio.gather(*browser.visits)
