"""Password guessing and flooding against a real oauth.py started with strict limits."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.flows import live_auth
from tests.support.oauth_server import OAuthServer, run_oauth_server

pytestmark = pytest.mark.process

RESOURCE = "http://127.0.0.1:8000/mcp"


@contextlib.contextmanager
def strict_server(tmp_path: Path, **env: str) -> Iterator[OAuthServer]:
    """oauth.py with some limits set low; its log must never show a traceback."""
    with run_oauth_server(tmp_path, extra_env=env) as server:
        yield server
        assert "Traceback" not in server.program.output()


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, html
    return match.group(1)


async def test_password_guessing_is_throttled_and_logged(tmp_path: Path) -> None:
    with strict_server(tmp_path, OAUTH_LOGIN_FAILURES_PER_ACCOUNT="3/3600") as server:
        async with live_auth(server, RESOURCE) as auth:
            flow = await auth.start()
            page = await auth.http.get(auth.authorization_url(flow))
            form = {"csrf_token": hidden(page.text, "csrf_token"), "tx": hidden(page.text, "tx")}
            url = f"{server.issuer}/authorize"
            for guess in ("guess-one", "guess-two", "guess-three"):
                wrong = await auth.http.post(
                    url, data={**form, "username": server.username, "password": guess}
                )
                assert wrong.status_code == 200
                assert "Wrong username or password." in wrong.text
            right = {**form, "username": server.username, "password": server.password}
            throttled = await auth.http.post(url, data=right)
        log = server.program.output()
    assert throttled.status_code == 429  # the account waits, whatever the password
    assert int(throttled.headers["retry-after"]) > 60
    assert "Too many failed sign-ins from your address." in throttled.text
    client_id = flow.client["client_id"]
    line = f"sign-in failed: account demo, source 127.0.0.1, client {client_id}"
    assert log.count(line) == 3
    assert "guess-" not in log  # never a password


async def test_registration_and_sign_in_floods_are_bounded(tmp_path: Path) -> None:
    env = {"OAUTH_REGISTER_RATE": "5/3600", "OAUTH_AUTHORIZE_RATE": "8/3600"}
    with strict_server(tmp_path, OAUTH_MAX_PENDING="3", **env) as server:
        async with live_auth(server, RESOURCE) as auth:
            flow, tokens = await auth.tokens()  # a real user first: 1 registration, 4 pages
            body = {"redirect_uris": ["http://127.0.0.1/cb"]}
            registered = [
                await auth.http.post(f"{server.issuer}/register", json=body) for _ in range(5)
            ]
            pages = [await auth.http.get(auth.authorization_url(flow)) for _ in range(5)]
            refreshed = await auth.refresh(flow, tokens["refresh_token"])
    assert [r.status_code for r in registered] == [201, 201, 201, 201, 429]
    assert registered[-1].json()["error"] == "temporarily_unavailable"
    assert int(registered[-1].headers["retry-after"]) > 60
    # three sign-ins may wait at once (all browsers together), then 503; past the rate, 429
    assert [p.status_code for p in pages] == [200, 200, 200, 503, 429]
    assert "Too many sign-ins are in progress" in pages[3].text
    assert "Too many requests from your address" in pages[4].text
    assert int(pages[4].headers["retry-after"]) > 60
    assert refreshed.status_code == 200  # /token is not limited: legitimate clients go on
