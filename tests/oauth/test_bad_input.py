"""Bad input, one row per case: the exact status and error code, never a 500, never a redirect
before the client and redirect URI are validated."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.oauth_harness import REDIRECT, Flow, Harness, code_form, pkce, query_of

Mutation = Callable[[dict[str, str]], None]


def _set(**values: str) -> Mutation:
    def mutate(data: dict[str, str]) -> None:
        data.update(values)

    return mutate


def _drop(*keys: str) -> Mutation:
    def mutate(data: dict[str, str]) -> None:
        for key in keys:
            data.pop(key, None)

    return mutate


PAGE_ERRORS = [
    pytest.param({"client_id": None}, "no client_id", id="missing-client-id"),
    pytest.param({"client_id": "nobody"}, "not registered", id="unknown-client"),
    pytest.param({"redirect_uri": None}, "no redirect_uri", id="missing-redirect-uri"),
    pytest.param(
        {"redirect_uri": "https://evil.example/callback"}, "not registered", id="foreign-redirect"
    ),
    pytest.param(
        {"redirect_uri": "http://127.0.0.1:33333/other"}, "not registered", id="loopback-other-path"
    ),
    pytest.param(
        {"redirect_uri": REDIRECT + "#frag"}, "not registered", id="redirect-with-fragment"
    ),
    pytest.param(
        {"redirect_uri": "http://127.0.0.1:33333/callback?x=1"},
        "not registered",
        id="redirect-extra-query",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), PAGE_ERRORS)
async def test_authorize_error_page_never_redirects(
    oauth: Harness, overrides: dict[str, str | None], message: str
) -> None:
    verifier, challenge = pkce()
    flow = Flow(await oauth.register(), verifier, challenge)
    response = await oauth.http.get(oauth.authorization_url(flow, **overrides))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert message in response.text
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("client_id=a&client_id=b&redirect_uri=x", id="repeated-client-id"),
        pytest.param("client_id=%ff%fe", id="undecodable"),
        pytest.param("", id="empty"),
    ],
)
async def test_authorize_malformed_query_is_an_error_page(oauth: Harness, query: str) -> None:
    response = await oauth.http.get(f"/authorize?{query}")
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_repeated_redirect_uri_is_an_error_page(oauth: Harness) -> None:
    verifier, challenge = pkce()
    flow = Flow(await oauth.register(), verifier, challenge)
    url = oauth.authorization_url(flow) + "&redirect_uri=" + REDIRECT
    response = await oauth.http.get(url)
    assert response.status_code == 400
    assert "location" not in response.headers


REDIRECT_ERRORS = [
    pytest.param({"response_type": "token"}, "unsupported_response_type", id="implicit"),
    pytest.param({"response_type": None}, "invalid_request", id="missing-response-type"),
    pytest.param({"code_challenge": None}, "invalid_request", id="missing-pkce"),
    pytest.param({"code_challenge_method": "plain"}, "invalid_request", id="plain-pkce"),
    pytest.param({"code_challenge_method": None}, "invalid_request", id="pkce-method-missing"),
    pytest.param({"code_challenge": "short"}, "invalid_request", id="malformed-challenge"),
    pytest.param({"scope": "admin"}, "invalid_scope", id="unknown-scope"),
    # offline_access alone is ignored now (test_interop); with an unknown scope it still fails
    pytest.param({"scope": "offline_access admin"}, "invalid_scope", id="offline-access-admin"),
    pytest.param(
        {"resource": "http://127.0.0.1:9999/mcp"}, "invalid_target", id="unknown-resource"
    ),
    pytest.param({"resource": "http://127.0.0.1:8000/mcp#x"}, "invalid_target", id="fragment"),
    pytest.param({"resource": "/mcp"}, "invalid_target", id="relative-resource"),
    pytest.param({"resource": "http://127.0.0.1:x/mcp"}, "invalid_target", id="resource-port"),
    pytest.param({"state": "s" * 2000}, "invalid_request", id="state-too-long"),
]


@pytest.mark.parametrize(("overrides", "error"), REDIRECT_ERRORS)
async def test_authorize_error_redirects_with_state_and_iss(
    oauth: Harness, overrides: dict[str, str | None], error: str
) -> None:
    verifier, challenge = pkce()
    flow = Flow(await oauth.register(), verifier, challenge)
    response = await oauth.http.get(oauth.authorization_url(flow, **overrides))
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    params = query_of(location)
    assert params["error"] == error
    assert params["iss"] == oauth.settings.issuer
    assert "code" not in params
    if "state" not in overrides:
        assert params["state"] == flow.state


async def test_repeated_scope_is_invalid_request(oauth: Harness) -> None:
    verifier, challenge = pkce()
    flow = Flow(await oauth.register(), verifier, challenge)
    response = await oauth.http.get(oauth.authorization_url(flow) + "&scope=weather:read")
    assert query_of(response.headers["location"])["error"] == "invalid_request"


TOKEN_ERRORS = [
    pytest.param(_drop("grant_type"), 400, "invalid_request", id="missing-grant-type"),
    pytest.param(_set(grant_type="password"), 400, "unsupported_grant_type", id="password"),
    # OAuth 2.1 4.2: a public client (this one) never gets client_credentials
    pytest.param(
        _set(grant_type="client_credentials"), 400, "unauthorized_client", id="client-creds"
    ),
    pytest.param(_drop("code"), 400, "invalid_request", id="missing-code"),
    pytest.param(_set(code="not-a-code"), 400, "invalid_grant", id="unknown-code"),
    pytest.param(_drop("code_verifier"), 400, "invalid_request", id="missing-verifier"),
    pytest.param(_set(code_verifier="short"), 400, "invalid_request", id="short-verifier"),
    pytest.param(_set(code_verifier="a" * 129), 400, "invalid_request", id="long-verifier"),
    pytest.param(_set(code_verifier="!" * 43), 400, "invalid_request", id="bad-chars-verifier"),
    pytest.param(_set(code_verifier="a" * 43), 400, "invalid_grant", id="wrong-verifier"),
    pytest.param(
        _set(redirect_uri="http://127.0.0.1:1/callback"), 400, "invalid_grant", id="redirect-diff"
    ),
    pytest.param(
        _set(resource="http://127.0.0.1:9999/mcp"), 400, "invalid_target", id="resource-mismatch"
    ),
    pytest.param(_set(client_id="nobody"), 401, "invalid_client", id="unknown-client"),
    pytest.param(_drop("client_id"), 401, "invalid_client", id="no-client-auth"),
    pytest.param(_set(client_secret="x"), 401, "invalid_client", id="secret-for-public-client"),
]


@pytest.mark.parametrize(("mutate", "status", "error"), TOKEN_ERRORS)
async def test_token_errors(oauth: Harness, mutate: Mutation, status: int, error: str) -> None:
    flow = await oauth.new_flow()
    data = code_form(flow)
    mutate(data)
    response = await oauth.token(data)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"
    if status == 401:
        assert "www-authenticate" not in response.headers  # no HTTP auth was attempted
    # a failed exchange leaves the code usable by its rightful owner
    if error not in {"invalid_client"}:
        assert (await oauth.redeem(flow)).status_code == 200


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        pytest.param(b'{"grant_type": "authorization_code"}', "application/json", id="json-body"),
        pytest.param(b"grant_type=authorization_code&grant_type=x", None, id="repeated-param"),
        pytest.param(b"grant_type=%ff", None, id="not-utf8"),
        pytest.param(b"a=" + b"x" * 20000, None, id="oversized"),
    ],
)
async def test_token_malformed_body(
    oauth: Harness, content: bytes, content_type: str | None
) -> None:
    flow = await oauth.new_flow()
    headers = {"content-type": content_type or "application/x-www-form-urlencoded"}
    response = await oauth.http.post(
        "/token",
        content=content + f"&client_id={flow.client['client_id']}".encode(),
        headers=headers,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def _reg(**overrides: Any) -> bytes:
    body: dict[str, Any] = {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}
    body.update(overrides)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


REGISTRATION_ERRORS = [
    pytest.param(b"not json", "invalid_client_metadata", id="not-json"),
    pytest.param(b"[]", "invalid_client_metadata", id="json-array"),
    pytest.param(b"", "invalid_client_metadata", id="empty-body"),
    pytest.param(_reg(client_name="x" * 20000), "invalid_client_metadata", id="oversized"),
    pytest.param(_reg(redirect_uris=None), "invalid_client_metadata", id="no-redirect-uris"),
    pytest.param(_reg(redirect_uris=[]), "invalid_client_metadata", id="empty-redirect-uris"),
    pytest.param(_reg(redirect_uris=REDIRECT), "invalid_client_metadata", id="redirect-not-list"),
    pytest.param(_reg(redirect_uris=["javascript:alert(1)"]), "invalid_redirect_uri", id="js"),
    pytest.param(_reg(redirect_uris=["data:text/html,hi"]), "invalid_redirect_uri", id="data"),
    pytest.param(_reg(redirect_uris=["file:///etc/passwd"]), "invalid_redirect_uri", id="file"),
    pytest.param(_reg(redirect_uris=[REDIRECT + "#f"]), "invalid_redirect_uri", id="fragment"),
    pytest.param(
        _reg(redirect_uris=["https://*.example.com/cb"]), "invalid_redirect_uri", id="wildcard"
    ),
    pytest.param(
        _reg(redirect_uris=["http://example.com/cb"]), "invalid_redirect_uri", id="http-remote"
    ),
    pytest.param(_reg(redirect_uris=["myapp://cb"]), "invalid_redirect_uri", id="custom-scheme"),
    pytest.param(
        _reg(redirect_uris=["https://user@example.com/cb"]), "invalid_redirect_uri", id="userinfo"
    ),
    pytest.param(
        _reg(redirect_uris=["http://127.0.0.1:99999/cb"]), "invalid_redirect_uri", id="bad-port"
    ),
    pytest.param(_reg(redirect_uris=["/relative"]), "invalid_redirect_uri", id="relative"),
    pytest.param(_reg(redirect_uris=[""]), "invalid_redirect_uri", id="empty-uri"),
    pytest.param(
        _reg(redirect_uris=["https://a.example/ cb"]), "invalid_redirect_uri", id="whitespace"
    ),
    pytest.param(
        _reg(token_endpoint_auth_method="private_key_jwt"),
        "invalid_client_metadata",
        id="auth-method",
    ),
    pytest.param(_reg(grant_types=["implicit"]), "invalid_client_metadata", id="implicit-grant"),
    pytest.param(
        _reg(grant_types=["refresh_token"]), "invalid_client_metadata", id="no-code-grant"
    ),
    pytest.param(_reg(response_types=["token"]), "invalid_client_metadata", id="response-token"),
    pytest.param(_reg(client_name=123), "invalid_client_metadata", id="name-not-string"),
    pytest.param(_reg(scope="admin"), "invalid_client_metadata", id="unknown-scope"),
    pytest.param(_reg(scope=" "), "invalid_client_metadata", id="blank-scope"),
    pytest.param(
        _reg(client_uri="javascript:alert(1)"), "invalid_client_metadata", id="client-uri-js"
    ),
    pytest.param(_reg(application_type="tv"), "invalid_client_metadata", id="application-type"),
]


@pytest.mark.parametrize(("body", "error"), REGISTRATION_ERRORS)
async def test_registration_errors(oauth: Harness, body: bytes, error: str) -> None:
    response = await oauth.http.post(
        "/register", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
