"""Complete an authorization request without a browser: the real login and consent form POSTs."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx2

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
