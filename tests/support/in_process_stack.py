"""Our oauth and weather apps in process behind one router, and a headless browser for sign-in.

For client tests that want the real servers without processes: `in_process_stack` builds both
apps (NWS replayed, no introspection cache), runs their lifespans, and yields an
`InProcessStack` whose `open` is the client's `webbrowser.open` (it signs in on the real pages,
then calls the client's real loopback listener). With `documents`, oauth.py fetches client ID
metadata documents from that host, behind a fake public DNS name (`document_hosts`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from secure_mcp.common.resource_credentials import ResourceCredentials
from secure_mcp.oauth.app import build_app as build_oauth_app
from secure_mcp.oauth.cimd_fetch import FetchSeams
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.weather.app import Seams as WeatherSeams
from secure_mcp.weather.app import build_app as build_weather_app
from secure_mcp.weather.settings import WeatherSettings
from tests.support.cimd_server import DocumentHost, FakeResolver
from tests.support.client_fakes import RS_ORIGIN, RS_URL, Router
from tests.support.headless import BackgroundBrowser, authorize_headlessly
from tests.support.oauth_server import TEST_PASSWORD, TEST_USERNAME

ISSUER = "http://127.0.0.1:9000"
RS_CREDENTIALS = ResourceCredentials("weather-rs", "rs-secret-for-tests")
LOOPBACK = "http://127.0.0.1/callback"  # any port matches (RFC 8252 7.3)


@dataclass
class InProcessStack(BackgroundBrowser):
    """The two apps behind `router`, the document host if any, and what the browser saw.

    `open` is `webbrowser.open`: it signs in on the real pages in the background, like a person.
    """

    router: Router
    documents: DocumentHost | None = None

    async def _visit(self, url: str) -> None:
        hooks = {"response": [self.keep]}
        async with httpx2.AsyncClient(transport=self.router, event_hooks=hooks) as http:
            location = await authorize_headlessly(
                http, url, username=TEST_USERNAME, password=TEST_PASSWORD
            )
        async with httpx2.AsyncClient() as listener:  # the client's real loopback listener
            await listener.get(location)

    async def register(self, method: str) -> dict[str, Any]:
        """A confidential client registered with `method` (RFC 7591)."""
        body = {
            "redirect_uris": [LOOPBACK],
            "token_endpoint_auth_method": method,
            "grant_types": ["authorization_code", "refresh_token"],
            "application_type": "native",
            "client_name": f"confidential {method}",
        }
        async with httpx2.AsyncClient(transport=self.router) as http:
            response = await http.post(f"{ISSUER}/register", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def introspect(self, token: str) -> dict[str, object]:
        """What the authorization server says about `token` (as the weather resource server)."""
        auth = (RS_CREDENTIALS.client_id, RS_CREDENTIALS.client_secret)
        async with httpx2.AsyncClient(transport=self.router) as http:
            answer = await http.post(f"{ISSUER}/introspect", data={"token": token}, auth=auth)
        assert answer.status_code == 200, answer.text
        result: dict[str, object] = answer.json()
        return result

    async def active(self, token: str) -> bool:
        """Whether the authorization server still honours `token` (RFC 7662)."""
        return bool((await self.introspect(token))["active"])

    def requests_to(self, path: str) -> list[str]:
        """The client's requests (and the browser's) to `path` on the authorization server."""
        return [r for r in self.router.requests if r.split(" ", 1)[1].startswith(ISSUER + path)]


@asynccontextmanager
async def in_process_stack(
    tmp_path: Path,
    *,
    documents: DocumentHost | None = None,
    document_hosts: Mapping[str, list[str]] | None = None,
) -> AsyncIterator[InProcessStack]:
    """oauth + weather (NWS replayed) in process; `documents` answers oauth.py's CIMD fetches."""
    oauth_settings = OAuthSettings(
        data_dir=tmp_path / "oauth-data",
        issuer=ISSUER,
        resources=(RS_URL,),
        scopes=("weather:read",),
        demo_username=TEST_USERNAME,
        demo_password=TEST_PASSWORD,
        introspection_credentials=RS_CREDENTIALS,
    )
    if documents is None:
        oauth_app = build_oauth_app(oauth_settings)
    else:
        resolver = FakeResolver(dict(document_hosts or {}))
        seams = FetchSeams(resolver=resolver, transport=documents.transport())
        oauth_app = build_oauth_app(oauth_settings, seams)
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
        yield InProcessStack(Router({ISSUER: oauth_app, RS_ORIGIN: weather_app}), documents)
