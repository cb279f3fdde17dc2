"""RFC 9068 JWT access tokens: their header and claims, the JWKS, introspection and revocation."""

from __future__ import annotations

import contextlib
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from secure_mcp.common import token_format
from secure_mcp.oauth.app import build_app
from secure_mcp.oauth.banner import banner
from secure_mcp.oauth.settings import OAuthSettings, SettingsError, settings_from
from secure_mcp.oauth.signing_keys import KEYS_FILE
from tests.support.oauth_harness import RESOURCE, Flow, Harness, segment
from tests.support.oauth_server import make_oauth_app, running_oauth_app

CLAIMS = {"iss", "aud", "exp", "iat", "jti", "client_id", "sub", "scope"}


@pytest.fixture
async def jwt_oauth(tmp_path: Path) -> AsyncIterator[Harness]:
    """The authorization server in process, issuing JWT access tokens (5 minutes)."""
    async with running_oauth_app(tmp_path, access_token_format="jwt", access_token_ttl=300) as (
        app,
        settings,
    ):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=settings.issuer) as client:
            yield Harness(app, settings, client)


async def jwks(oauth: Harness) -> dict[str, Any]:
    """The published JWK Set, fetched from the metadata's `jwks_uri`."""
    meta = (await oauth.http.get("/.well-known/oauth-authorization-server")).json()
    response = await oauth.http.get(meta["jwks_uri"])
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def refresh(oauth: Harness, flow: Flow, refresh_token: str) -> dict[str, Any]:
    """The refresh grant for `flow`'s client (asserted 200)."""
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    response = await oauth.token({**data, "client_id": flow.client["client_id"]})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_access_tokens_are_rfc9068_jwts_and_refresh_tokens_stay_opaque(
    jwt_oauth: Harness,
) -> None:
    flow = await jwt_oauth.new_flow()
    body = (await jwt_oauth.redeem(flow)).json()
    token = body["access_token"]
    assert token_format.looks_like_jwt(token)
    assert token_format.well_formed(body["refresh_token"], token_format.REFRESH_PREFIX)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    header, claims = segment(token, 0), segment(token, 1)
    keys = (await jwks(jwt_oauth))["keys"]
    assert header == {"alg": "ES256", "typ": "at+jwt", "kid": keys[0]["kid"]}  # RFC 9068 2.1
    assert set(claims) == CLAIMS  # RFC 9068 2.2, exactly these
    assert claims["iss"] == "http://127.0.0.1:8003"  # byte for byte
    assert claims["aud"] == RESOURCE
    assert claims["client_id"] == flow.client["client_id"]
    assert claims["sub"] == "demo"
    assert claims["scope"] == "weather:read"
    assert claims["exp"] - claims["iat"] == 300
    assert len(claims["jti"]) >= 43
    # the signature verifies with the published key (and only the public key is needed)
    verified = jwt.decode(token, KeySet.import_key_set({"keys": keys}), algorithms=["ES256"])
    assert verified.claims == claims
    again = (await jwt_oauth.redeem(await jwt_oauth.new_flow())).json()["access_token"]
    assert segment(again, 1)["jti"] != claims["jti"]


async def test_the_jwks_holds_public_keys_only_and_is_cors_readable(jwt_oauth: Harness) -> None:
    meta = (await jwt_oauth.http.get("/.well-known/oauth-authorization-server")).json()
    assert meta["jwks_uri"] == "http://127.0.0.1:8003/jwks"
    response = await jwt_oauth.http.get("/jwks", headers={"origin": "https://app.example"})
    assert response.headers["content-type"] == "application/jwk-set+json"
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["access-control-allow-origin"] == "*"
    [key] = response.json()["keys"]
    assert set(key) == {"kty", "crv", "x", "y", "kid", "use", "alg"}  # RFC 7517: no "d"
    assert (key["kty"], key["crv"], key["use"], key["alg"]) == ("EC", "P-256", "sig", "ES256")
    assert ECKey.import_key(key).thumbprint() == key["kid"]  # RFC 7638 key id
    preflight = await jwt_oauth.http.options(
        "/jwks",
        headers={"origin": "https://app.example", "access-control-request-method": "GET"},
    )
    assert preflight.status_code == 200


async def test_opaque_mode_publishes_no_keys(oauth: Harness) -> None:
    meta = (await oauth.http.get("/.well-known/oauth-authorization-server")).json()
    assert "jwks_uri" not in meta
    assert (await oauth.http.get("/jwks")).status_code == 404
    assert not (oauth.settings.data_dir / KEYS_FILE).exists()


async def test_jwt_access_tokens_introspect_refresh_and_revoke(jwt_oauth: Harness) -> None:
    flow = await jwt_oauth.new_flow()
    first = (await jwt_oauth.redeem(flow)).json()
    claims = segment(first["access_token"], 1)
    answer = await jwt_oauth.introspect(first["access_token"])
    assert answer["active"] is True
    assert (answer["aud"], answer["sub"], answer["scope"]) == (RESOURCE, "demo", "weather:read")
    assert (answer["exp"], answer["iat"]) == (claims["exp"], claims["iat"])
    second = await refresh(jwt_oauth, flow, first["refresh_token"])
    assert token_format.looks_like_jwt(second["access_token"])
    assert (await jwt_oauth.introspect(second["access_token"]))["active"] is True
    revoked = await jwt_oauth.http.post(
        "/revoke", data={"token": second["access_token"], "client_id": flow.client["client_id"]}
    )
    assert revoked.status_code == 200
    assert await jwt_oauth.introspect(second["access_token"]) == {"active": False}
    assert (await jwt_oauth.introspect(first["access_token"]))["active"] is True
    # revoking the refresh token revokes the family, JWTs included
    await jwt_oauth.http.post(
        "/revoke", data={"token": second["refresh_token"], "client_id": flow.client["client_id"]}
    )
    assert await jwt_oauth.introspect(first["access_token"]) == {"active": False}


@contextlib.asynccontextmanager
async def jwks_client(tmp_path: Path) -> AsyncIterator[tuple[httpx2.AsyncClient, OAuthSettings]]:
    """A JWT-mode server over the data folder in `tmp_path`, and a client to it."""
    async with running_oauth_app(tmp_path, access_token_format="jwt") as (app, settings):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=settings.issuer) as client:
            yield client, settings


async def test_signing_keys_are_private_and_survive_a_restart(tmp_path: Path) -> None:
    async with jwks_client(tmp_path) as (client, settings):
        first = (await client.get("/jwks")).json()
    path = settings.data_dir / KEYS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert '"d"' in path.read_text()  # the private key stays on disk, never in the JWKS
    async with jwks_client(tmp_path) as (client, _):
        assert (await client.get("/jwks")).json() == first


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read"),
        ('{"keys": 3}', "has no list of keys"),
        ('{"keys": [{"kid": "x"}]}', "has no kid or jwk"),
        ('{"keys": [{"kid": "x", "jwk": {"kty": "EC"}, "created_at": 1, "activates_at": 1}]}',
         "not a usable EC key"),
    ],
    ids=["not-json", "no-list", "no-jwk", "bad-jwk"],
)  # fmt: skip
def test_a_damaged_key_file_stops_the_start_in_one_line(
    tmp_path: Path, content: str, message: str
) -> None:
    data = tmp_path / "oauth-data"
    data.mkdir(mode=0o700)
    (data / KEYS_FILE).write_text(content)
    (data / KEYS_FILE).chmod(0o600)
    with pytest.raises(SettingsError, match=message) as caught:
        make_oauth_app(tmp_path, access_token_format="jwt")
    assert "\n" not in str(caught.value)


def test_a_key_file_others_may_write_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "oauth-data"
    data.mkdir(mode=0o700)
    (data / KEYS_FILE).write_text("{}")
    (data / KEYS_FILE).chmod(0o666)
    with pytest.raises(OSError, match="writable by other users"):
        make_oauth_app(tmp_path, access_token_format="jwt")


def test_format_and_lifetime_settings(tmp_path: Path) -> None:
    base = {"OAUTH_DATA_DIR": str(tmp_path)}
    assert settings_from([], base).access_token_format == "opaque"
    jwt_env = settings_from([], {**base, "OAUTH_ACCESS_TOKEN_FORMAT": "jwt"})
    assert (jwt_env.access_token_format, jwt_env.access_token_ttl) == ("jwt", 300)
    flag = settings_from(["--access-token-format", "jwt", "--access-token-ttl", "120"], base)
    assert (flag.jwt_access_tokens, flag.access_token_ttl) == (True, 120)
    chosen = settings_from([], {**base, "OAUTH_ACCESS_TOKEN_FORMAT": "jwt", **ttl("900")})
    assert chosen.access_token_ttl == 900
    ahead = settings_from(["--signing-key-publish-ahead", "3600"], base)
    assert ahead.signing_key_publish_ahead == 3600
    with pytest.raises(SettingsError, match="opaque or jwt"):
        settings_from([], {**base, "OAUTH_ACCESS_TOKEN_FORMAT": "paseto"})
    with pytest.raises(SettingsError, match="publish-ahead"):
        settings_from([], {**base, "OAUTH_SIGNING_KEY_PUBLISH_AHEAD": "100"})
    small = settings_from([], {**base, "OAUTH_SIGNING_KEY_PUBLISH_AHEAD": "65"} | max_age("5"))
    assert (small.signing_key_publish_ahead, small.jwks_max_age) == (65, 5)
    with pytest.raises(SettingsError, match="must be positive"):
        OAuthSettings(data_dir=tmp_path, demo_password="x" * 12, jwks_max_age=-1)


def ttl(value: str) -> dict[str, str]:
    """The access token lifetime variable."""
    return {"OAUTH_ACCESS_TOKEN_TTL": value}


def max_age(value: str) -> dict[str, str]:
    """The JWKS max-age variable."""
    return {"OAUTH_JWKS_MAX_AGE": value}


def test_banner_names_the_token_format(tmp_path: Path) -> None:
    opaque = settings_from([], {"OAUTH_DATA_DIR": str(tmp_path)})
    assert "access tokens: opaque (checked by introspection), 3600 s" in "\n".join(banner(opaque))
    jwt_mode = settings_from(["--access-token-format", "jwt"], {"OAUTH_DATA_DIR": str(tmp_path)})
    assert (
        "access tokens: JWT (RFC 9068, ES256), 300 s; keys at http://localhost:8003/jwks"
        in "\n".join(banner(jwt_mode))
    )


def test_the_app_builds_in_both_formats(tmp_path: Path) -> None:
    for kind in ("opaque", "jwt"):
        settings = OAuthSettings(
            data_dir=tmp_path / kind, demo_password="x" * 12, access_token_format=kind
        )
        assert build_app(settings) is not None
