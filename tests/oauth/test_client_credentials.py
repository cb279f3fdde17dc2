"""Machine clients: RFC 7591 initial access token, client_credentials, private_key_jwt."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import select, update

from secure_mcp.oauth import clients, rfc7523
from secure_mcp.oauth.app import build_app
from secure_mcp.oauth.cimd_fetch import FetchSeams
from secure_mcp.oauth.errors import InvalidClient
from secure_mcp.oauth.models import Client, Token, UsedAssertion
from secure_mcp.oauth.settings import SettingsError, settings_from
from secure_mcp.oauth.storage import Database
from tests.support.machine_clients import (
    BEARER,
    INITIAL_ACCESS_TOKEN,
    INITIAL_ACCESS_TOKEN_HASH,
    assertion,
    assertion_form,
    jwks,
    new_key,
    register_machine,
)
from tests.support.oauth_harness import RESOURCE, Harness, running_harness
from tests.support.oauth_server import make_oauth_app

ISSUER = "http://127.0.0.1:8003"
JWKS_URL = "https://keys.example/ci/jwks.json"
PUBLIC_ADDRESS = "93.184.216.34"


def test_initial_access_token_setting_is_hashed(tmp_path: Path) -> None:
    env = {"OAUTH_DATA_DIR": str(tmp_path), "OAUTH_INITIAL_ACCESS_TOKEN": INITIAL_ACCESS_TOKEN}
    settings = settings_from([], env)
    assert settings.initial_access_token_hash == INITIAL_ACCESS_TOKEN_HASH
    assert INITIAL_ACCESS_TOKEN not in repr(settings)
    flag = settings_from(["--initial-access-token", INITIAL_ACCESS_TOKEN], env | {"X": ""})
    assert flag.initial_access_token_hash == INITIAL_ACCESS_TOKEN_HASH
    assert settings_from([], {"OAUTH_DATA_DIR": str(tmp_path)}).initial_access_token_hash is None
    with pytest.raises(SettingsError, match="at least 32"):
        settings_from(["--initial-access-token", "short"], {"OAUTH_DATA_DIR": str(tmp_path)})


# --- registration (RFC 7591 3: initial access token) ---


async def test_machine_registration_without_the_flag_is_refused(oauth: Harness) -> None:
    response = await register_machine(oauth.http)
    assert response.status_code == 401  # a token was sent, and none is configured
    assert response.json()["error"] == "invalid_token"
    response = await register_machine(oauth.http, headers={})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"
    assert "--initial-access-token" in response.json()["error_description"]


async def test_machine_registration_needs_the_token(machine: Harness) -> None:
    missing = await register_machine(machine.http, headers={})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="register"'
    wrong = await register_machine(machine.http, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    basic = await register_machine(machine.http, headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401
    made = await register_machine(machine.http)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["grant_types"] == ["client_credentials"]
    assert body["client_secret"]
    assert "redirect_uris" not in body
    assert "response_types" not in body
    assert made.headers["cache-control"] == "no-store"


async def test_browser_clients_register_openly_but_not_with_a_wrong_token(
    machine: Harness,
) -> None:
    assert (await machine.register())["client_id"]
    body = {"redirect_uris": ["http://127.0.0.1:1/callback"], "token_endpoint_auth_method": "none"}
    wrong = await machine.http.post("/register", json=body, headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401
    right = await machine.http.post("/register", json=body, headers=BEARER)
    assert right.status_code == 201


BAD_MACHINE_METADATA = [
    pytest.param({"token_endpoint_auth_method": "none"}, "must authenticate", id="public-client"),
    pytest.param(
        {"grant_types": ["client_credentials", "authorization_code"]},
        "registered alone",
        id="mixed-grants",
    ),
    pytest.param(
        {"redirect_uris": ["http://127.0.0.1:1/cb"]}, "no redirect_uris", id="redirect-uris"
    ),
    pytest.param({"token_endpoint_auth_method": "private_key_jwt"}, "exactly one of", id="no-keys"),
    pytest.param(
        {
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": []},
            "jwks_uri": JWKS_URL,
        },
        "exactly one of",
        id="both-keys",
    ),
    pytest.param({"jwks_uri": JWKS_URL}, "only for private_key_jwt", id="keys-with-secret"),
    pytest.param(
        {"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": []}},
        "1 to 10 keys",
        id="empty-jwks",
    ),
    pytest.param(
        {
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [new_key().as_dict(private=True)]},
        },
        "public keys only",
        id="private-key-published",
    ),
    pytest.param(
        {
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
        },
        "public keys only",
        id="symmetric-key",
    ),
    pytest.param(
        {
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [{**new_key().as_dict(private=False), "alg": "HS256"}]},
        },
        "not allowed",
        id="hmac-alg",
    ),
    pytest.param(
        {
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]},
        },
        "malformed",
        id="bad-point",
    ),
    pytest.param(
        {"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://keys.example/j"},
        "jwks_uri must be https",
        id="http-jwks-uri",
    ),
    pytest.param(
        {"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "keys.example/j"},
        "absolute https",
        id="relative-jwks-uri",
    ),
]


@pytest.mark.parametrize(("fields", "message"), BAD_MACHINE_METADATA)
async def test_bad_machine_metadata(machine: Harness, fields: dict[str, Any], message: str) -> None:
    response = await register_machine(machine.http, **fields)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"
    assert message in response.json()["error_description"]


# --- the client_credentials grant (OAuth 2.1 4.2) ---


async def secret_client(machine: Harness, **fields: Any) -> dict[str, Any]:
    response = await register_machine(machine.http, **fields)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_client_credentials_with_a_secret(machine: Harness) -> None:
    client = await secret_client(machine)
    auth = (client["client_id"], client["client_secret"])
    response = await machine.token({"grant_type": "client_credentials"}, auth=auth)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "weather:read"
    assert "refresh_token" not in body  # OAuth 2.1 4.2.3
    info = await machine.introspect(body["access_token"])
    assert info["active"] is True
    assert info["sub"] == client["client_id"] == info["client_id"]  # no user: the client
    assert info["subject_type"] == "client"
    assert info["aud"] == RESOURCE
    post = {"client_id": client["client_id"], "client_secret": client["client_secret"]}
    again = await machine.token({"grant_type": "client_credentials", **post})
    assert again.status_code == 401  # registered for client_secret_basic only


async def test_user_tokens_do_not_say_client(machine: Harness) -> None:
    flow = await machine.new_flow()
    token = (await machine.redeem(flow)).json()["access_token"]
    assert "subject_type" not in await machine.introspect(token)


CC_ERRORS = [
    pytest.param({"resource": "http://127.0.0.1:9/mcp"}, 400, "invalid_target", id="resource"),
    pytest.param({"scope": "weather:admin"}, 400, "invalid_scope", id="scope"),
    pytest.param({"resource": "not a uri"}, 400, "invalid_target", id="malformed-resource"),
]


@pytest.mark.parametrize(("extra", "status", "error"), CC_ERRORS)
async def test_client_credentials_resource_and_scope_rules(
    machine: Harness, extra: dict[str, str], status: int, error: str
) -> None:
    client = await secret_client(machine)
    auth = (client["client_id"], client["client_secret"])
    response = await machine.token({"grant_type": "client_credentials", **extra}, auth=auth)
    assert response.status_code == status
    assert response.json()["error"] == error


async def test_client_credentials_scope_narrowed_by_registration(tmp_path: Path) -> None:
    overrides = {
        "initial_access_token_hash": INITIAL_ACCESS_TOKEN_HASH,
        "scopes": ("weather:read", "weather:alerts"),
    }
    async with running_harness(tmp_path, **overrides) as harness:
        client = await secret_client(harness, scope="weather:read")
        auth = (client["client_id"], client["client_secret"])
        token = await harness.token({"grant_type": "client_credentials"}, auth=auth)
        assert token.json()["scope"] == "weather:read"
        wider = await harness.token(
            {"grant_type": "client_credentials", "scope": "weather:alerts"}, auth=auth
        )
        assert wider.json()["error"] == "invalid_scope"


async def test_a_browser_client_cannot_use_client_credentials(machine: Harness) -> None:
    client = await machine.register(token_endpoint_auth_method="client_secret_basic")
    auth = (client["client_id"], client["client_secret"])
    response = await machine.token({"grant_type": "client_credentials"}, auth=auth)
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


async def test_a_machine_client_cannot_sign_users_in(machine: Harness) -> None:
    client = await secret_client(machine)
    url = f"/authorize?response_type=code&client_id={client['client_id']}"
    response = await machine.http.get(url)
    assert response.status_code == 400
    assert "not registered to sign users in" in response.text
    assert "location" not in response.headers


async def test_machine_tokens_as_jwt(tmp_path: Path) -> None:
    overrides = {"initial_access_token_hash": INITIAL_ACCESS_TOKEN_HASH}
    overrides["access_token_format"] = "jwt"
    async with running_harness(tmp_path, **overrides) as harness:
        client = await secret_client(harness)
        auth = (client["client_id"], client["client_secret"])
        token = (await harness.token({"grant_type": "client_credentials"}, auth=auth)).json()
        claims = json.loads(_b64(token["access_token"].split(".")[1]))
        assert claims["sub"] == claims["client_id"] == client["client_id"]
        assert claims["aud"] == RESOURCE


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


# --- private_key_jwt (RFC 7523 2.2) ---


async def jwt_client(machine: Harness, *keys: Any) -> str:
    client = await secret_client(
        machine, token_endpoint_auth_method="private_key_jwt", jwks=jwks(*keys)
    )
    assert "client_secret" not in client
    return str(client["client_id"])


@pytest.mark.parametrize("aud", [ISSUER, ISSUER + "/", f"{ISSUER}/token", [ISSUER, "x"]])
async def test_private_key_jwt(machine: Harness, aud: str | list[str]) -> None:
    key = new_key()
    client_id = await jwt_client(machine, key)
    response = await machine.token(assertion_form(assertion(key, client_id, aud)))
    assert response.status_code == 200, response.text
    info = await machine.introspect(response.json()["access_token"])
    assert info["sub"] == client_id
    assert "refresh_token" not in response.json()


async def test_private_key_jwt_with_client_id_and_without_kid(machine: Harness) -> None:
    key, other = new_key("a"), new_key("b")
    client_id = await jwt_client(machine, other, key)
    signed = assertion(key, client_id, ISSUER)
    no_kid = _without_kid(key, client_id)
    ok = await machine.token(assertion_form(no_kid, client_id=client_id))
    assert ok.status_code == 200, ok.text
    ok = await machine.token(assertion_form(signed, client_id=client_id))
    assert ok.status_code == 200, ok.text


def _without_kid(key: Any, client_id: str) -> str:
    import secrets
    import time

    from joserfc import jwt

    moment = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER,
        "exp": moment + 60,
        "jti": secrets.token_urlsafe(8),
    }
    return jwt.encode({"alg": "ES256"}, claims, key, algorithms=["ES256"])


async def test_private_key_jwt_revokes_its_token(machine: Harness) -> None:
    key = new_key()
    client_id = await jwt_client(machine, key)
    token = (await machine.token(assertion_form(assertion(key, client_id, ISSUER)))).json()
    form = {
        "token": token["access_token"],
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion(key, client_id, ISSUER),
    }
    assert (await machine.http.post("/revoke", data=form)).status_code == 200
    assert await machine.introspect(token["access_token"]) == {"active": False}


async def test_used_jtis_are_stored_and_cleaned_up(machine: Harness) -> None:
    key = new_key()
    client_id = await jwt_client(machine, key)
    signed = assertion(key, client_id, ISSUER, exp=_now() + 2)
    assert (await machine.token(assertion_form(signed))).status_code == 200
    db = Database(machine.settings.data_dir)
    async with db.read() as session:
        rows = (await session.scalars(select(UsedAssertion))).all()
        assert len(rows) == 1
        assert "jti" not in rows[0].jti_hash  # a hash, not the jti
        assert (await session.scalars(select(Token))).all()
    await db.close()


def _now() -> int:
    import time

    return int(time.time())


class KeyHost:
    """A jwks_uri host: serves the current key set, counts fetches."""

    def __init__(self, document: dict[str, Any], content_type: str = "application/jwk-set+json"):
        self.document = document
        self.content_type = content_type
        self.fetches = 0

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        self.fetches += 1
        body = json.dumps(self.document).encode()
        headers = {"content-type": self.content_type}
        return httpx2.Response(200, headers=headers, stream=httpx2.ByteStream(body))

    def seams(
        self, address: str = PUBLIC_ADDRESS, clock: Callable[[], float] = time.monotonic
    ) -> FetchSeams:
        """Every name resolves to `address`; every fetch reaches this host."""

        async def resolver(name: str, port: int) -> list[str]:
            return [address]

        return FetchSeams(
            resolver=resolver, transport=httpx2.MockTransport(self.handler), clock=clock
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def jwks_uri_client(tmp_path: Path, seams: FetchSeams) -> AsyncIterator[tuple[Harness, str]]:
    """The server fetching keys through `seams`; a private_key_jwt client with JWKS_URL."""
    _, settings = make_oauth_app(tmp_path, initial_access_token_hash=INITIAL_ACCESS_TOKEN_HASH)
    app = build_app(settings, seams)
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=settings.issuer) as http:
            harness = Harness(app, settings, http)
            client = await secret_client(
                harness, token_endpoint_auth_method="private_key_jwt", jwks_uri=JWKS_URL
            )
            yield harness, client["client_id"]


async def test_jwks_uri_is_fetched_cached_and_refetched_for_a_new_key(tmp_path: Path) -> None:
    key, rotated = new_key("old"), new_key("new")
    host, clock = KeyHost(jwks(key)), Clock()
    async with jwks_uri_client(tmp_path, host.seams(clock=clock)) as (harness, cid):
        for _ in range(2):
            ok = await harness.token(assertion_form(assertion(key, cid, ISSUER)))
            assert ok.status_code == 200, ok.text
        assert host.fetches == 1  # cached
        host.document = jwks(key, rotated)
        early = await harness.token(assertion_form(assertion(rotated, cid, ISSUER)))
        assert early.status_code == 401  # an unknown kid refetches at most every 30 s
        clock.now += 31
        ok = await harness.token(assertion_form(assertion(rotated, cid, ISSUER)))
        assert ok.status_code == 200, ok.text
        assert host.fetches == 2
        host.content_type = "text/html"
        clock.now += 301
        stale = await harness.token(assertion_form(assertion(rotated, cid, ISSUER)))
        assert stale.status_code == 401
        assert "jwks_uri is unusable" in stale.json()["error_description"]


async def test_jwks_uri_on_a_private_address_is_not_fetched(tmp_path: Path) -> None:
    host = KeyHost(jwks(new_key()))
    async with jwks_uri_client(tmp_path, host.seams("10.0.0.7")) as (harness, cid):
        key = new_key()
        form = assertion_form(assertion(key, cid, ISSUER))
        response = await harness.token(form)
        assert response.status_code == 401
        assert "SSRF" in response.json()["error_description"]
        assert host.fetches == 0


# --- units: key sets, audiences, the cache bound ---


def _small_rsa() -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    numbers = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505 - refused
    n = numbers.public_numbers().n.to_bytes(128, "big")
    encoded = base64.urlsafe_b64encode(n).rstrip(b"=").decode()
    return {"kty": "RSA", "n": encoded, "e": "AQAB"}


def _ec(kid: str) -> dict[str, Any]:
    return dict(new_key(kid).as_dict(private=False))


BAD_JWKS = [
    pytest.param("keys", "JWK Set", id="not-a-set"),
    pytest.param({"keys": ["x"]}, "JSON object", id="not-object"),
    pytest.param({"keys": [{**_ec("a"), "use": "enc"}]}, "signing keys", id="enc-key"),
    pytest.param({"keys": [{"kty": "EC", "crv": "P-256", "x": 1, "y": 2}]}, "malformed", id="nums"),
    pytest.param({"keys": [{"kty": "EC", "crv": "P-521", "x": "A", "y": "A"}]}, "P-521", id="crv"),
    pytest.param({"keys": [_small_rsa()]}, "at least 2048", id="small-rsa"),
    pytest.param({"keys": [_ec("a"), _ec("a")]}, "same kid", id="same-kid"),
    pytest.param({"keys": [_ec("a")] * 11}, "1 to 10", id="too-many"),
]


@pytest.mark.parametrize(("document", "message"), BAD_JWKS)
def test_bad_key_sets(document: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rfc7523.public_keys(document)


def test_good_key_sets() -> None:
    from joserfc.jwk import OKPKey, RSAKey

    rsa = RSAKey.generate_key(2048).as_dict(private=False)
    okp = OKPKey.generate_key("Ed25519").as_dict(private=False)
    keys = rfc7523.public_keys({"keys": [rsa, {**okp, "alg": "Ed25519"}, _ec("e")]})
    assert [k.kind for k in keys] == [("RSA", None), ("OKP", "Ed25519"), ("EC", "P-256")]
    assert keys[0].verifies("PS256")
    assert not keys[0].verifies("ES256")
    assert keys[1].verifies("Ed25519")


def test_audiences_of_an_issuer_with_a_path(tmp_path: Path) -> None:
    _, settings = make_oauth_app(tmp_path, issuer="http://127.0.0.1:8003/tenant")
    audiences = rfc7523.Assertions(settings, Database(tmp_path)).audiences
    assert audiences == {"http://127.0.0.1:8003/tenant", "http://127.0.0.1:8003/tenant/token"}


def test_claims_without_sub_or_with_a_bad_kid() -> None:
    key = new_key()
    with pytest.raises(InvalidClient, match="no sub"):
        rfc7523.unverified_subject(assertion(key, "c", ISSUER, sub=None))
    with pytest.raises(InvalidClient, match="not a JWT"):
        rfc7523.header("garbage")
    with pytest.raises(InvalidClient, match="kid is malformed"):
        rfc7523.header(f"{_part({'alg': 'ES256', 'kid': 5})}.{_part({})}.AAAA")


def _part(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


async def test_the_jwks_cache_is_bounded(tmp_path: Path) -> None:
    host = KeyHost(jwks(new_key()))
    _, settings = make_oauth_app(tmp_path)
    keys = rfc7523.ClientKeys(settings, host.seams(), max_entries=1)
    for uri in ("https://a.example/j", "https://b.example/j", "https://a.example/j"):
        client = Client(client_id="c", registered={"jwks_uri": uri})
        assert await keys.keys(client, None)
    assert host.fetches == 3  # a was evicted by b


async def test_an_assertion_where_none_is_accepted(oauth: Harness) -> None:
    from starlette.requests import Request

    key = new_key()
    form = assertion_form(assertion(key, "c", ISSUER))
    request = Request({"type": "http", "headers": []})
    db = Database(oauth.settings.data_dir)
    await db.start()
    async with db.write() as session:
        session.add(
            Client(
                client_id="c",
                token_endpoint_auth_method="private_key_jwt",
                redirect_uris=[],
                grant_types=["client_credentials"],
                registered={"jwks": jwks(key)},
                issued_at=0,
            )
        )
    with pytest.raises(InvalidClient, match="not accepted here"):
        await clients.authenticate(db, request, form)
    await db.close()


async def test_the_audit_log_shows_a_machine_token_without_a_user(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    overrides = {"initial_access_token_hash": INITIAL_ACCESS_TOKEN_HASH, "audit_log": str(path)}
    async with running_harness(tmp_path, **overrides) as harness:
        client = await secret_client(harness)
        auth = (client["client_id"], client["client_secret"])
        token = await harness.token({"grant_type": "client_credentials"}, auth=auth)
        assert token.status_code == 200
    events = [json.loads(line) for line in path.read_text().splitlines()]
    issued = [e for e in events if e["event"] == "token_issued"]
    assert len(issued) == 1
    assert issued[0]["grant_type"] == "client_credentials"
    assert issued[0]["client_id"] == client["client_id"]
    assert issued[0]["user"] is None  # no user: the client is the subject
    assert token.json()["access_token"] not in path.read_text()


async def test_machine_clients_are_never_deleted_as_unused(tmp_path: Path) -> None:
    overrides = {"initial_access_token_hash": INITIAL_ACCESS_TOKEN_HASH, "max_unused_clients": 1}
    async with running_harness(tmp_path, **overrides) as harness:
        await harness.register()  # a browser client nobody allowed yet: the limit is full
        client = await secret_client(harness)  # an administrator's client still registers
        db = Database(harness.settings.data_dir, unused_client_ttl=1)
        async with db.write() as session:
            await session.execute(update(Client).values(issued_at=1))
        await db.cleanup()
        async with db.read() as session:
            kept = (await session.scalars(select(Client.client_id))).all()
        await db.close()
        assert kept == [client["client_id"]]  # the unused browser client went


def test_banner_says_whether_machine_registration_is_on(tmp_path: Path) -> None:
    from secure_mcp.oauth.banner import banner

    _, settings = make_oauth_app(tmp_path)
    assert "client_credentials registrations: off" in "\n".join(banner(settings))
    on = dataclasses.replace(settings, initial_access_token_hash=INITIAL_ACCESS_TOKEN_HASH)
    assert "with the initial access token" in "\n".join(banner(on))


async def test_a_dpop_proof_binds_a_machine_token(machine: Harness) -> None:
    from tests.support import dpop

    client = await secret_client(machine)
    key = dpop.new_key()
    headers = {"DPoP": dpop.proof(key, "POST", f"{ISSUER}/token")}
    auth = (client["client_id"], client["client_secret"])
    response = await machine.token({"grant_type": "client_credentials"}, auth=auth, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    seen = await machine.introspect(response.json()["access_token"])
    assert seen["cnf"] == {"jkt": dpop.jkt_of(key)}
    assert seen["subject_type"] == "client"
