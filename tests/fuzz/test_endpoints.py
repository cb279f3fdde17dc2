"""Property-based fuzzing of /register, /authorize, /token, /introspect and /revoke, in process.

Properties: no 5xx, no crash; every JSON error is an RFC 6749 error object whose code belongs
to the endpoint; registration only ever accepts https or loopback http redirect URIs; an
authorization request only ever redirects to the client's registered redirect URI.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx2
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import fuzz_strategies as s
from tests.support.fuzz_strategies import Target, examples

VALID = {"{client_id}": "client_id", "{redirect_uri}": "redirect_uri", "{resource}": "resource"}
placeholders = st.sampled_from(sorted(VALID))
mixed = st.one_of(s.values, placeholders)


def fill(value: Any, target: Target) -> Any:
    """Replace a placeholder with the target's valid value of that kind."""
    return getattr(target, VALID[value]) if value in VALID else value


def pairs_for(target: Target, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Form pairs with placeholders filled in."""
    return [(k, str(fill(v, target))) for k, v in pairs]


def is_loopback_or_https(uri: str) -> bool:
    """OAuth 2.1 2.3.1: what a registered redirect URI may be."""
    parts = urlsplit(uri)
    loopback = parts.hostname in {"127.0.0.1", "::1", "localhost"}
    return parts.scheme == "https" or (parts.scheme == "http" and loopback)


@settings(max_examples=examples(500))
@given(body=s.register_bodies)
async def test_register_json(target: Target, body: Any) -> None:
    response = await target.http.post(
        "/register", content=s.encode_json(body), headers={"content-type": "application/json"}
    )
    assert response.status_code in {201, 400}, response.text
    if response.status_code == 400:
        s.check_error_object(response, s.REGISTER_ERRORS)
        return
    client = response.json()
    assert client["redirect_uris"], client
    assert all(is_loopback_or_https(uri) for uri in client["redirect_uris"]), client
    assert all("#" not in uri and "*" not in uri for uri in client["redirect_uris"]), client


@settings(max_examples=examples(250))
@given(
    path=st.sampled_from(["/register", "/token", "/introspect", "/revoke"]),
    body=s.raw_bodies,
    content_type=s.content_types,
)
async def test_raw_bodies(target: Target, path: str, body: bytes, content_type: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await target.http.post(path, content=body, headers=headers)
    allowed = {
        "/register": s.REGISTER_ERRORS,
        "/token": s.TOKEN_ERRORS,
        "/introspect": s.INTROSPECT_ERRORS,
        "/revoke": s.REVOKE_ERRORS,
    }[path]
    assert response.status_code in {400, 401}, response.text
    s.check_error_object(response, allowed)


@settings(max_examples=examples(650))
@given(
    pairs=s.form_pairs(s.TOKEN_FIELDS).map(lambda p: p),
    grant=st.sampled_from([None, "authorization_code", "refresh_token"]),
    client=st.booleans(),
)
async def test_token(
    target: Target, pairs: list[tuple[str, str]], grant: str | None, client: bool
) -> None:
    sent = pairs_for(target, pairs)
    if grant:
        sent.insert(0, ("grant_type", grant))
    if client:
        sent.insert(0, ("client_id", target.client_id))
    response = await target.http.post(
        "/token",
        data=None,
        content=urlencode(sent),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code in {400, 401}, response.text
    s.check_error_object(response, s.TOKEN_ERRORS)


@settings(max_examples=examples(350))
@given(pairs=s.form_pairs(["token", "token_type_hint"]), authenticated=st.booleans())
async def test_introspect(
    target: Target, pairs: list[tuple[str, str]], authenticated: bool
) -> None:
    response = await target.http.post(
        "/introspect",
        content=urlencode(pairs_for(target, pairs)),
        headers={"content-type": "application/x-www-form-urlencoded"},
        auth=target.rs_auth if authenticated else httpx2.USE_CLIENT_DEFAULT,
    )
    if response.status_code == 200:
        assert authenticated
        assert response.json() == {"active": False}  # no valid token can be guessed
        return
    assert response.status_code == (400 if authenticated else 401), response.text
    s.check_error_object(response, s.INTROSPECT_ERRORS)


@settings(max_examples=examples(350))
@given(pairs=s.form_pairs(["token", "token_type_hint", "client_id", "client_secret"]))
async def test_revoke(target: Target, pairs: list[tuple[str, str]]) -> None:
    response = await target.http.post(
        "/revoke",
        content=urlencode(pairs_for(target, pairs)),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    if response.status_code == 200:
        assert response.content == b""
        return
    assert response.status_code in {400, 401}, response.text
    s.check_error_object(response, s.REVOKE_ERRORS)


@settings(max_examples=examples(550))
@given(params=st.lists(st.tuples(st.sampled_from(s.AUTHORIZE_FIELDS), mixed), max_size=12))
async def test_authorize_query(target: Target, params: list[tuple[str, str]]) -> None:
    response = await target.http.get(f"/authorize?{urlencode(pairs_for(target, params))}")
    assert response.status_code in {200, 302, 400}, response.text
    assert response.headers["x-frame-options"] == "DENY"
    if response.status_code != 302:
        assert response.headers["content-type"].startswith("text/html")
        return
    # Only a validated redirect URI is ever used: the registered one (loopback: any port).
    location = urlsplit(response.headers["location"])
    assert (location.scheme, location.hostname, location.path) == ("http", "127.0.0.1", "/callback")
    query = dict(p.split("=", 1) for p in location.query.split("&"))
    assert query["error"] in s.AUTHORIZE_ERRORS
    assert "code" not in query  # no user signed in: never a code


@settings(max_examples=examples(200))
@given(pairs=s.form_pairs(s.FORM_FIELDS), content_type=s.content_types)
async def test_authorize_form(
    target: Target, pairs: list[tuple[str, str]], content_type: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await target.http.post(
        "/authorize", content=urlencode(pairs_for(target, pairs)), headers=headers
    )
    assert response.status_code in {400, 403}, response.text
    assert "location" not in response.headers
    assert response.headers["x-frame-options"] == "DENY"


@settings(max_examples=examples(100))
@given(uri=st.sampled_from(["https://a.example/", "http://127.0.0.1/"]), tail=s.text)
async def test_error_descriptions_use_the_rfc6749_charset(
    target: Target, uri: str, tail: str
) -> None:
    body = {"redirect_uris": [f"{uri}{tail}#x"]}
    response = await target.http.post("/register", json=body)
    assert response.status_code == 400
    assert s.description_is_rfc6749_charset(s.check_error_object(response, s.REGISTER_ERRORS))
