"""The provider against conformance-style servers: discovery, scopes, and every gap we close."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from secure_mcp.client.auth.resource import allowed_resources, same_resource
from secure_mcp.client.auth.storage import FileTokenStorage
from secure_mcp.client.connection import ClientConnectError, preflight
from secure_mcp.client.settings import ClientSettings
from tests.support.client_fakes import (
    AS_ORIGIN,
    RS_ORIGIN,
    RS_URL,
    FakeAuthServer,
    FakeResource,
)
from tests.support.scripted_browser import ScriptedBrowser, sign_in, signed_in_client

PRM_PLACES = ["inserted", "root", "header"]


@pytest.mark.parametrize("prm_at", PRM_PLACES)
async def test_protected_resource_metadata_fallbacks(
    prm_at: str,
    settings: ClientSettings,
    fake_as: FakeAuthServer,
    browser: ScriptedBrowser,
    lines: list[str],
) -> None:
    await sign_in(settings, FakeResource(fake_as, prm_at=prm_at), browser, lines)
    assert len(fake_as.tokens) == 1


AS_PLACES = [
    pytest.param(AS_ORIGIN, "oauth-authorization-server", "inserted", id="root-oauth"),
    pytest.param(AS_ORIGIN, "openid-configuration", "inserted", id="root-openid"),
    pytest.param(f"{AS_ORIGIN}/tenant", "oauth-authorization-server", "inserted", id="path-oauth"),
    pytest.param(f"{AS_ORIGIN}/tenant", "openid-configuration", "inserted", id="path-openid"),
    pytest.param(f"{AS_ORIGIN}/tenant", "openid-configuration", "appended", id="path-appended"),
]


@pytest.mark.parametrize(("issuer", "metadata_at", "path_style"), AS_PLACES)
async def test_authorization_server_metadata_fallbacks(
    issuer: str,
    metadata_at: str,
    path_style: str,
    settings: ClientSettings,
    browser: ScriptedBrowser,
    lines: list[str],
) -> None:
    server = FakeAuthServer(issuer=issuer, metadata_at=metadata_at, path_style=path_style)
    await sign_in(settings, FakeResource(server), browser, lines)
    assert len(server.tokens) == 1
    assert f"GET {server.metadata_path()}" in server.log


async def test_scope_comes_from_the_challenge(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    await sign_in(settings, FakeResource(fake_as, challenge_scope="weather:read"), browser, lines)
    assert fake_as.authorize_params[0]["scope"] == "weather:read"


async def test_scope_falls_back_to_resource_metadata(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    await sign_in(settings, FakeResource(fake_as, challenge_scope=None), browser, lines)
    assert fake_as.authorize_params[0]["scope"] == "weather:read weather:admin"


async def test_scope_is_omitted_without_a_hint(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    resource = FakeResource(fake_as, challenge_scope=None, scopes_supported=None)
    await sign_in(settings, resource, browser, lines)
    assert "scope" not in fake_as.authorize_params[0]  # not the AS's whole scopes_supported


async def test_metadata_with_another_issuer_is_refused(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    fake_as.metadata_issuer = "http://127.0.0.1:9000/other"
    with pytest.raises(ClientConnectError, match="issuer mismatch"):
        await sign_in(settings, FakeResource(fake_as), browser, lines)
    assert fake_as.registrations == {}


async def test_offline_access_only_when_listed(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    fake_as.scopes_supported = ["weather:read", "offline_access"]
    await sign_in(settings, FakeResource(fake_as), browser, lines)
    assert fake_as.authorize_params[0]["scope"] == "weather:read offline_access"


async def test_step_up_asks_for_the_union_of_scopes(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    resource = FakeResource(fake_as)
    async with signed_in_client(settings, resource, browser, lines) as (http, provider):
        await preflight(http, provider)
        resource.needs = {"weather:admin"}
        response = await http.post(RS_URL)
    assert response.json() == {"ok": True, "scope": "weather:read weather:admin"}
    assert [p["scope"] for p in fake_as.authorize_params] == [
        "weather:read",
        "weather:read weather:admin",
    ]


async def test_scope_flag_asks_for_less_then_steps_up_to_the_union(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    # --scope: least privilege at sign-in, the server's challenge still drives the step-up
    resource = FakeResource(fake_as, challenge_scope="weather:alerts weather:forecast")
    resource.needs = {"weather:alerts"}
    settings = dataclasses.replace(settings, scope="weather:alerts")
    async with signed_in_client(settings, resource, browser, lines) as (http, provider):
        await preflight(http, provider)
        resource.needs = {"weather:alerts", "weather:forecast"}
        response = await http.post(RS_URL)
    assert response.json() == {"ok": True, "scope": "weather:alerts weather:forecast"}
    assert [p["scope"] for p in fake_as.authorize_params] == [
        "weather:alerts",
        "weather:alerts weather:forecast",
    ]


async def test_step_up_is_bounded(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    fake_as.grantable = {"weather:read"}  # the server never grants admin
    resource = FakeResource(fake_as)
    async with signed_in_client(settings, resource, browser, lines) as (http, provider):
        await preflight(http, provider)
        resource.needs = {"weather:admin"}
        with pytest.raises(ClientConnectError, match="asks for weather:admin scope") as caught:
            await preflight(http, provider)  # one step-up, still 403: give up
    assert caught.value.error == "insufficient_scope"
    assert len(fake_as.authorize_params) == 2


async def test_step_up_can_be_turned_off(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    resource = FakeResource(fake_as)
    settings = dataclasses.replace(settings, max_step_up=0)
    async with signed_in_client(settings, resource, browser, lines) as (http, provider):
        await preflight(http, provider)
        resource.needs = {"weather:admin"}
        with pytest.raises(ClientConnectError, match="asks for weather:admin scope"):
            await preflight(http, provider)
    assert len(fake_as.authorize_params) == 1


@pytest.mark.parametrize("methods", [None, ["plain"]], ids=["absent", "plain-only"])
async def test_refuses_a_server_without_s256(
    methods: list[str] | None,
    settings: ClientSettings,
    fake_as: FakeAuthServer,
    browser: ScriptedBrowser,
    lines: list[str],
) -> None:
    fake_as.methods = methods
    with pytest.raises(ClientConnectError, match="does not advertise PKCE S256") as caught:
        await sign_in(settings, FakeResource(fake_as), browser, lines)
    assert caught.value.error == "invalid_request"
    assert fake_as.registrations == {}  # refused before registering
    assert browser.opened == []


async def test_refuses_s256_missing_with_cimd(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    fake_as.methods = None
    fake_as.cimd_supported = True
    settings = dataclasses.replace(settings, client_metadata_url="https://client.example/cimd")
    with pytest.raises(ClientConnectError, match="does not advertise PKCE S256"):
        await sign_in(settings, FakeResource(fake_as), browser, lines)
    assert browser.opened == []


async def test_resource_mismatch_says_which_url_to_use(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    resource = FakeResource(fake_as, resource="http://localhost:8000/mcp")
    with pytest.raises(ClientConnectError) as caught:
        await sign_in(settings, resource, browser, lines)
    message = str(caught.value)
    assert "Connect with --server http://localhost:8000/mcp" in message
    assert "localhost and 127.0.0.1 are different origins" in message
    assert caught.value.error == "invalid_target"
    assert fake_as.log == []


async def test_resource_mismatch_elsewhere(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    resource = FakeResource(fake_as, resource="https://other.example/mcp")
    with pytest.raises(ClientConnectError, match=r"--server https://other\.example/mcp") as caught:
        await sign_in(settings, resource, browser, lines)
    assert "different origins" not in str(caught.value)


@pytest.mark.parametrize(
    "named",
    [f"{RS_ORIGIN}/", RS_ORIGIN, f"{RS_URL}/sub", f"{RS_ORIGIN}/mc"],
    ids=["origin-slash", "origin", "child", "prefix"],
)
async def test_resource_must_be_the_server_url_itself(
    named: str,
    settings: ClientSettings,
    fake_as: FakeAuthServer,
    browser: ScriptedBrowser,
    lines: list[str],
) -> None:
    # RFC 9728 3.3: a parent resource would get tokens for the whole origin.
    with pytest.raises(ClientConnectError, match=f"says its resource URL is {named}[;,]") as caught:
        await sign_in(settings, FakeResource(fake_as, resource=named), browser, lines)
    assert caught.value.error == "invalid_target"
    assert fake_as.log == []
    parent = named in (RS_ORIGIN, f"{RS_ORIGIN}/")
    assert ("a parent of its own" in str(caught.value)) is parent
    assert ("Connect with --server" in str(caught.value)) is not parent


ROOT_PRM = f"{RS_ORIGIN}/.well-known/oauth-protected-resource"


@pytest.mark.parametrize(
    ("prm_url", "challenged", "allowed"),
    [
        (f"{ROOT_PRM}/mcp", None, [RS_URL]),
        (ROOT_PRM, None, [RS_URL, RS_ORIGIN]),
        (ROOT_PRM, ROOT_PRM, [RS_URL]),
        (f"{RS_ORIGIN}/metadata/prm.json", f"{RS_ORIGIN}/metadata/prm.json", [RS_URL]),
        (None, None, [RS_URL]),
    ],
    ids=["path-inserted", "root-fallback", "root-from-challenge", "challenge", "unknown"],
)
def test_allowed_resources_follow_the_url_the_metadata_came_from(
    prm_url: str | None, challenged: str | None, allowed: list[str]
) -> None:
    # RFC 9728 3.3: identical to the identifier the well-known URL was formed from, or to the
    # URL requested when the challenge named the document.
    assert allowed_resources(RS_URL, prm_url, challenged) == allowed


async def test_root_metadata_may_name_the_origin(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    resource = FakeResource(fake_as, prm_at="root", resource=f"{RS_ORIGIN}/")
    with pytest.raises(ClientConnectError):  # the fake MCP server wants tokens for /mcp
        await sign_in(settings, resource, browser, lines)
    assert fake_as.authorize_params[0]["resource"] == f"{RS_ORIGIN}/"


@pytest.mark.parametrize(
    ("expected", "named", "same"),
    [
        (RS_URL, RS_URL, True),
        (RS_URL, f"{RS_URL}/", True),
        (f"{RS_ORIGIN}/", RS_ORIGIN, True),
        (RS_URL, f"{RS_ORIGIN}/", False),
        (RS_URL, "http://localhost:8000/mcp", False),
    ],
    ids=["identical", "trailing-slash", "root", "parent", "other-host"],
)
def test_same_resource_allows_only_a_trailing_slash(expected: str, named: str, same: bool) -> None:
    assert same_resource(expected, named) is same


@pytest.mark.parametrize(
    ("knob", "value", "message"),
    [
        ("iss_override", "http://evil.example", "iss mismatch"),
        ("omit_iss", True, "missing iss"),
        ("refuse", "access_denied", "refused: access_denied"),
    ],
    ids=["iss-mismatch", "iss-missing", "refused"],
)
async def test_authorization_response_is_checked(
    knob: str,
    value: object,
    message: str,
    settings: ClientSettings,
    fake_as: FakeAuthServer,
    browser: ScriptedBrowser,
    lines: list[str],
) -> None:
    setattr(fake_as, knob, value)
    with pytest.raises(ClientConnectError, match=message):
        await sign_in(settings, FakeResource(fake_as), browser, lines)
    assert fake_as.tokens == {}  # no code was exchanged


async def test_a_response_with_another_state_is_ignored(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    # RFC 6749 10.12: the listener refuses it and keeps waiting; nothing is exchanged.
    fake_as.state_override = "forged-state"
    async with signed_in_client(settings, FakeResource(fake_as), browser, lines) as (http, p):
        p._authorizer._timeout = 0.5
        with pytest.raises(ClientConnectError, match="No authorization response"):
            await preflight(http, p)
    assert "Not this sign-in" in browser.callback_pages[0]
    assert fake_as.tokens == {}


async def test_discovery_failure_names_the_urls_tried(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    with pytest.raises(ClientConnectError) as caught:
        await sign_in(settings, FakeResource(fake_as, prm_at="none"), browser, lines)
    message = str(caught.value)
    assert message.startswith("Could not discover the authorization server for")
    assert f"{RS_ORIGIN}/.well-known/oauth-protected-resource/mcp" in message
    assert f"{RS_ORIGIN}/.well-known/oauth-authorization-server" in message
    assert caught.value.error == "discovery_failed"


async def test_client_id_metadata_document_when_supported(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    fake_as.cimd_supported = True
    settings = dataclasses.replace(settings, client_metadata_url="https://client.example/cimd")
    await sign_in(settings, FakeResource(fake_as), browser, lines)
    assert fake_as.registrations == {}
    assert fake_as.authorize_params[0]["client_id"] == "https://client.example/cimd"


async def test_dynamic_registration_without_cimd_support(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    settings = dataclasses.replace(settings, client_metadata_url="https://client.example/cimd")
    await sign_in(settings, FakeResource(fake_as), browser, lines)
    assert list(fake_as.registrations) == [fake_as.authorize_params[0]["client_id"]]


async def test_credentials_are_never_reused_with_another_server(
    settings: ClientSettings, browser: ScriptedBrowser, lines: list[str]
) -> None:
    first = FakeAuthServer()
    await sign_in(settings, FakeResource(first), browser, lines)
    second_origin = "http://127.0.0.1:9001"
    second = FakeAuthServer(issuer=second_origin, origin=second_origin)
    resource = FakeResource(second)
    first.tokens.clear()  # the resource now trusts only the second server
    async with signed_in_client(settings, resource, browser, lines, {second_origin: second}) as (
        http,
        provider,
    ):
        await preflight(http, provider)
    first_id = next(iter(first.registrations))
    assert second.authorize_params[0]["client_id"] in second.registrations
    assert second.authorize_params[0]["client_id"] != first_id
    _, kept = FileTokenStorage(settings.state_dir, RS_URL).server(AS_ORIGIN)
    assert kept is not None
    assert kept.client_id == first_id


async def test_verbose_prints_each_step_and_no_secret(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    settings = dataclasses.replace(settings, verbose=True)
    await sign_in(settings, FakeResource(fake_as), browser, lines)
    text = "\n".join(lines)
    for step in (
        "discovery: GET",
        "registration: POST",
        "registration: client_id",
        "authorization:",
        "token exchange: POST",
    ):
        assert f"[oauth] {step}" in text
    assert f"[oauth] {RS_URL}: HTTP 401, sign-in needed" in text
    for token in [*fake_as.tokens, *fake_as.refresh_tokens]:
        assert token not in text
    assert "code_verifier" not in text


async def test_quiet_by_default(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    await sign_in(settings, FakeResource(fake_as), browser, lines)
    assert not any(line.startswith("[oauth]") for line in lines)
    assert any(line.startswith("Sign in to continue.") for line in lines)


async def test_paste_mode_reads_the_redirect_url(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    settings = dataclasses.replace(settings, paste=True)
    loop = asyncio.get_running_loop()

    def pasted(prompt: str) -> str:
        url = next(line for line in lines if "/authorize?" in line).split()[-1]
        return asyncio.run_coroutine_threadsafe(browser.location_for(url), loop).result()

    resource = FakeResource(fake_as)
    async with signed_in_client(settings, resource, browser, lines) as (http, provider):
        provider._authorizer._input_fn = pasted
        await preflight(http, provider)
    assert browser.opened == []  # --paste never opens a browser
    assert len(fake_as.tokens) == 1
