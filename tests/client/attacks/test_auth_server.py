"""A malicious authorization server: plain http, mix-up without `iss`, unusable tokens."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from mcp.shared.auth import OAuthClientInformationFull, OAuthMetadata, OAuthToken
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from secure_mcp.client.auth.revocation import Outcome, revoke_tokens
from tests.support.client_fakes import AS_ORIGIN, RS_ORIGIN, FakeAuthServer
from tests.support.hostile import HostileAuthServer, HostileMcp
from tests.support.hostile_world import World, assert_inert

EVIL_ORIGIN = "http://127.0.0.1:9100"
EVIL_MCP = "http://127.0.0.1:8100/mcp"


class StrictAuthServer(HostileAuthServer):
    """Redirects only to a redirect URI registered for the client (any port on loopback)."""

    async def _authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        registered = self.registrations.get(params.get("client_id", ""), {})
        asked = urlsplit(params.get("redirect_uri", ""))
        if not any(
            (urlsplit(uri).hostname, urlsplit(uri).path) == (asked.hostname, asked.path)
            for uri in registered.get("redirect_uris", [])
        ):
            return HTMLResponse("redirect_uri not registered for this client", status_code=400)
        return await super()._authorize(request)


class Browser:
    """Follows the authorization redirect to the client's listener, whatever the answer."""

    def __init__(self, router: Any) -> None:
        self.router = router
        self.opened: list[str] = []
        self.statuses: list[int] = []

    def open(self, url: str) -> bool:
        self.opened.append(url)
        asyncio.get_running_loop().create_task(self._visit(url))
        return True

    async def _visit(self, url: str) -> None:
        async with httpx2.AsyncClient(transport=self.router) as client:
            answer = await client.get(url)
        self.statuses.append(answer.status_code)
        if answer.status_code == 302:
            async with httpx2.AsyncClient() as listener:
                await listener.get(answer.headers["location"])


def test_mix_up_without_iss_never_sends_the_code_to_the_other_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """RFC 9700 4.4: the evil AS names the honest AS's authorization endpoint as its own."""
    honest = StrictAuthServer(iss_supported=False, omit_iss=True)  # sends no `iss`
    evil = HostileAuthServer(issuer=EVIL_ORIGIN, origin=EVIL_ORIGIN, iss_supported=False)
    honest_metadata, evil_metadata = honest.metadata, evil.metadata
    honest.metadata = lambda: {  # type: ignore[method-assign]
        **honest_metadata(),
        "authorization_response_iss_parameter_supported": False,
    }
    evil.metadata = lambda: {  # type: ignore[method-assign]
        **evil_metadata(),
        "authorization_endpoint": f"{AS_ORIGIN}/authorize",
    }

    async def copied_registration(request: Request) -> Response:  # the victim's client_id
        evil.log.append("POST /register")
        return JSONResponse(next(iter(honest.registrations.values())), status_code=201)

    evil._register = copied_registration  # type: ignore[method-assign]

    world = World(tmp_path / "state", fake_as=honest, authorization_timeout=1.0)
    world.mcp = HostileMcp(auth=honest)
    world.router.transports[RS_ORIGIN] = world.mcp  # type: ignore[assignment]
    world.router.transports[EVIL_ORIGIN] = httpx2.ASGITransport(app=evil.app())
    world.router.transports["http://127.0.0.1:8100"] = HostileMcp(auth=evil)  # type: ignore[assignment]
    browser = Browser(world.router)
    world.browser = browser  # type: ignore[assignment]

    assert world.run("--call", "get_alerts", "{}") == 0  # the honest server: signed in
    assert world.run("--server", EVIL_MCP, "--call", "get_alerts", "{}") == 1
    evil_tokens = [line for line in evil.log if line.startswith("POST /token")]
    assert evil_tokens == []  # neither code nor verifier reached the evil token endpoint
    assert browser.statuses == [302, 400]  # the honest server refused the foreign redirect URI
    first, second = (parse_qs(urlsplit(url).query)["redirect_uri"][0] for url in browser.opened)
    assert urlsplit(first).path != urlsplit(second).path  # a redirect URI per issuer
    assert_inert(capsys.readouterr().err)


@pytest.mark.parametrize(
    "endpoint",
    ["issuer", "authorization_endpoint", "token_endpoint", "registration_endpoint"],
)
def test_plain_http_off_this_machine_is_refused_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: str
) -> None:
    secure = "https://as.example"
    insecure = "http://as.example"
    fake_as = FakeAuthServer(
        issuer=insecure if endpoint == "issuer" else secure,
        origin=secure,
    )
    metadata = fake_as.metadata

    def with_http() -> dict[str, Any]:
        doc = metadata()
        if endpoint != "issuer":
            doc[endpoint] = doc[endpoint].replace(secure, insecure)
        return doc

    fake_as.metadata = with_http  # type: ignore[method-assign]
    world = World(tmp_path / "state", fake_as=fake_as)
    world.mcp = HostileMcp(auth=fake_as)
    world.router.transports[RS_ORIGIN] = world.mcp  # type: ignore[assignment]
    for origin in (secure, insecure):
        world.router.transports[origin] = httpx2.ASGITransport(app=fake_as.app())
    assert world.run("--call", "get_alerts", "{}") == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(f"Error: The authorization server's {endpoint} http://as.example")
    assert "is not https" in err
    assert [line for line in fake_as.log if not line.startswith("GET")] == []  # nothing sent
    assert world.browser.opened == []


def test_revocation_is_not_sent_over_plain_http() -> None:
    sent: list[str] = []
    metadata = OAuthMetadata.model_validate(
        {
            "issuer": "https://as.example",
            "authorization_endpoint": "https://as.example/authorize",
            "token_endpoint": "https://as.example/token",
            "revocation_endpoint": "http://as.example/revoke",
        }
    )
    lines: list[str] = []

    async def revoke() -> Outcome:
        transport = httpx2.MockTransport(lambda r: sent.append(str(r.url)) or httpx2.Response(200))
        async with httpx2.AsyncClient(transport=transport) as http:
            return await revoke_tokens(
                http,
                metadata,
                OAuthClientInformationFull(client_id="c"),
                OAuthToken(access_token="a", refresh_token="r"),
                lines.append,
            )

    assert asyncio.run(revoke()) is Outcome.NOT_REVOKED
    assert sent == []
    assert lines == ["Not sent: the revocation endpoint http://as.example/revoke is not https."]


class OddTokens(FakeAuthServer):
    """Issues access tokens that cannot go in an HTTP header."""

    def _issue(self, client_id: str, scope: str, resource: str | None) -> dict[str, Any]:
        issued = super()._issue(client_id, scope, resource)
        odd = issued["access_token"] + "ü\r\nX-Injected: 1"
        self.tokens[odd] = self.tokens[issued["access_token"]]
        return {**issued, "access_token": odd}


def test_an_access_token_a_header_cannot_carry_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_as = OddTokens()
    world = World(tmp_path / "state", fake_as=fake_as)
    world.mcp = HostileMcp(auth=fake_as)
    world.router.transports[RS_ORIGIN] = world.mcp  # type: ignore[assignment]
    assert world.run("--call", "get_alerts", "{}") == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        "Error: The authorization server issued an access token with characters an HTTP header "
        "cannot carry (RFC 6750 2.1); it was not used."
    )
    assert "Traceback" not in err
    state = (tmp_path / "state" / "oauth-state.json").read_text()
    assert "X-Injected" not in state  # not stored either


def test_a_metadata_document_identity_needs_iss_else_the_client_registers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A document client has the same redirect URI at every server: only `iss` tells them apart."""
    fake_as = FakeAuthServer(cimd_supported=True, iss_supported=False, omit_iss=True)
    world = World(tmp_path / "state", fake_as=fake_as)
    world.mcp = HostileMcp(auth=fake_as)
    world.router.transports[RS_ORIGIN] = world.mcp  # type: ignore[assignment]
    document = "https://app.example/clients/weather-cli.json"
    assert world.run("--client-metadata-url", document, "--call", "get_alerts", "{}") == 0
    registration = next(iter(fake_as.registrations.values()))  # registered, not the document
    client_id = parse_qs(urlsplit(world.browser.opened[0]).query)["client_id"][0]
    assert client_id == registration["client_id"]
    assert urlsplit(registration["redirect_uris"][0]).path.startswith("/callback/")
    assert_inert(capsys.readouterr().err)


def test_a_stored_document_identity_is_refused_where_iss_is_not_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = "https://app.example/clients/weather-cli.json"
    fake_as = FakeAuthServer(cimd_supported=True)
    world = World(tmp_path / "state", fake_as=fake_as)
    world.mcp = HostileMcp(auth=fake_as)
    world.router.transports[RS_ORIGIN] = world.mcp  # type: ignore[assignment]
    assert world.run("--client-metadata-url", document, "--call", "get_alerts", "{}") == 0
    fake_as.iss_supported = False  # the server stops sending `iss`; the tokens are gone
    fake_as.tokens.clear()
    fake_as.refresh_tokens.clear()
    assert world.run("--client-metadata-url", document, "--call", "get_alerts", "{}") == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("Error: The authorization server http://127.0.0.1:9000 does not send")
    assert len(world.browser.opened) == 1
