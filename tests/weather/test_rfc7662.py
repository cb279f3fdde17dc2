"""The introspection verifier: discovery, claim checks, failure modes and the bounded cache."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest

from secure_mcp.common.resource_credentials import ResourceCredentials
from secure_mcp.weather.errors import (
    AuthServerUnavailableError,
    IntrospectionRefusedError,
    InvalidTokenError,
)
from secure_mcp.weather.rfc7662 import (
    IntrospectionVerifier,
    TokenInfo,
    TokenInfoCache,
    basic_auth,
    metadata_url,
    token_key,
)
from tests.support.weather_app import (
    CREDENTIALS,
    ISSUER,
    RESOURCE,
    FakeIntrospectionServer,
    access_token,
)

NOW = 1_000_000.0
TOK = access_token("tok")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def verifier(
    transport: httpx2.AsyncBaseTransport,
    *,
    ttl: float = 30,
    size: int = 100,
    clock: Clock | None = None,
    **extra: Any,
) -> IntrospectionVerifier:
    """A verifier against `transport` (with a hand clock when `clock` is given)."""
    if clock is not None:
        extra["clock"] = clock
    return IntrospectionVerifier(
        issuer=ISSUER,
        resource=RESOURCE,
        credentials=CREDENTIALS,
        cache_ttl=ttl,
        cache_size=size,
        transport=transport,
        **extra,
    )


def grant(expires_at: int | None = None) -> TokenInfo:
    """A grant for cache tests."""
    return TokenInfo("c", ("weather:read",), expires_at, "demo", ISSUER)


def test_metadata_url_inserts_well_known_before_path() -> None:
    assert metadata_url("http://localhost:8003") == (
        "http://localhost:8003/.well-known/oauth-authorization-server"
    )
    assert metadata_url("https://as.example/tenant/") == (
        "https://as.example/.well-known/oauth-authorization-server/tenant"
    )


def test_cache_key_is_sha256_never_the_token() -> None:
    key = token_key("secret-token")
    assert len(key) == 64
    assert "secret-token" not in key


def test_cache_entry_lives_at_most_ttl() -> None:
    clock = Clock()
    cache = TokenInfoCache(30, 10, clock)
    cache.put("k", grant())
    clock.now += 29.9
    assert cache.get("k") == grant()
    clock.now += 0.2
    assert cache.get("k") is None
    assert len(cache) == 0


def test_cache_entry_never_outlives_exp() -> None:
    clock = Clock()
    cache = TokenInfoCache(30, 10, clock)
    cache.put("k", grant(expires_at=int(NOW) + 5))
    clock.now += 5
    assert cache.get("k") is None


def test_cache_off_and_expired_grants_not_stored() -> None:
    clock = Clock()
    off = TokenInfoCache(0, 10, clock)
    off.put("k", grant())
    assert len(off) == 0
    on = TokenInfoCache(30, 10, clock)
    on.put("k", grant(expires_at=int(NOW)))
    assert len(on) == 0


def test_cache_size_is_bounded_least_recently_used_first() -> None:
    cache = TokenInfoCache(30, 2, Clock())
    cache.put("a", grant())
    cache.put("b", grant())
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", grant())
    assert len(cache) == 2
    assert cache.get("b") is None
    assert cache.get("a") is not None


async def test_check_returns_access_token_for_resource() -> None:
    server = FakeIntrospectionServer()
    server.grant("tok", scope="weather:read extra", aud=[RESOURCE])
    access = await verifier(server.transport(), clock=Clock()).check(TOK)
    assert access.resource == RESOURCE
    assert access.scopes == ["weather:read", "extra"]
    assert access.client_id == "client-1"
    assert access.subject == "demo"
    assert access.claims == {"iss": ISSUER}


async def test_minimal_active_answer_is_accepted_with_defaults() -> None:
    server = FakeIntrospectionServer()
    server.tokens["tok"] = {"active": True, "aud": RESOURCE}
    clock = Clock()
    access = await verifier(server.transport(), clock=clock).check("tok")
    assert (access.client_id, access.scopes, access.expires_at, access.claims) == (
        "",
        [],
        None,
        None,
    )


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"active": "true"}, id="active-not-boolean"),
        pytest.param({"aud": None}, id="no-audience"),
        pytest.param({"aud": [7]}, id="audience-not-strings"),
        pytest.param({"exp": int(NOW)}, id="exp-now"),
    ],
)
async def test_odd_answers_are_invalid(claims: dict[str, Any]) -> None:
    server = FakeIntrospectionServer()
    server.tokens["tok"] = {"active": True, "aud": RESOURCE, **claims}
    with pytest.raises(InvalidTokenError):
        await verifier(server.transport(), clock=Clock()).check("tok")


def _transport(handler: Any) -> httpx2.MockTransport:
    """A transport serving valid metadata and `handler` for introspection."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.startswith("/.well-known"):
            return httpx2.Response(
                200, json={"issuer": ISSUER, "introspection_endpoint": f"{ISSUER}/introspect"}
            )
        result: httpx2.Response = handler(request)
        return result

    return httpx2.MockTransport(handle)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            httpx2.Response(401, json={"error": "invalid_client"}), id="credentials-refused"
        ),
        pytest.param(httpx2.Response(500, text="boom"), id="server-error"),
        pytest.param(httpx2.Response(200, text="not json"), id="not-json"),
        pytest.param(httpx2.Response(200, json=["active"]), id="not-an-object"),
    ],
)
async def test_bad_introspection_answers_are_unavailable_not_invalid(
    answer: httpx2.Response,
) -> None:
    v = verifier(_transport(lambda _: answer), clock=Clock())
    with pytest.raises(AuthServerUnavailableError):
        await v.check("tok")


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param(httpx2.Response(404), id="missing"),
        pytest.param(httpx2.Response(200, text="<html>"), id="not-json"),
        pytest.param(httpx2.Response(200, json={"issuer": ISSUER + "/"}), id="issuer-mismatch"),
        pytest.param(httpx2.Response(200, json={"issuer": ISSUER}), id="no-endpoint"),
    ],
)
async def test_bad_metadata_is_unavailable(metadata: httpx2.Response) -> None:
    v = verifier(httpx2.MockTransport(lambda _: metadata), clock=Clock())
    with pytest.raises(AuthServerUnavailableError):
        await v.check("tok")


async def test_introspection_sends_basic_auth_and_form() -> None:
    seen: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={"active": False})

    with pytest.raises(InvalidTokenError):
        await verifier(_transport(answer), clock=Clock()).check("tok")
    request = seen[0]
    assert request.method == "POST"
    assert request.url == f"{ISSUER}/introspect"
    assert request.headers["authorization"].startswith("Basic ")
    assert request.content == b"token=tok&token_type_hint=access_token"


async def test_connection_failure_forgets_endpoint_and_rediscovers() -> None:
    server = FakeIntrospectionServer()
    server.grant("tok")
    v = verifier(server.transport(), ttl=0, clock=Clock())
    await v.check(TOK)
    server.down = True
    with pytest.raises(AuthServerUnavailableError):
        await v.check(TOK)
    server.down = False
    await v.check(TOK)
    assert server.metadata_fetches == 2
    await v.aclose()


async def test_verify_token_reuses_request_verdict_and_fails_closed() -> None:
    server = FakeIntrospectionServer()
    server.grant("tok")
    v = verifier(server.transport(), ttl=0, clock=Clock())
    await v.check(TOK)
    assert (await v.verify_token(TOK)) is not None
    assert server.introspections == 1
    assert await v.verify_token("other") is None  # not active at the server
    server.down = True
    assert await v.verify_token("third") is None  # unreachable: None, never a pass


def test_credentials_repr_hides_secret() -> None:
    assert "rs-secret" not in repr(ResourceCredentials("id", "rs-secret"))


async def test_concurrent_checks_share_one_introspection() -> None:
    server = FakeIntrospectionServer()
    server.grant("tok")
    v = verifier(server.transport(), ttl=0, clock=Clock())
    results = await asyncio.gather(*(v.check(TOK) for _ in range(5)))
    assert {r.client_id for r in results} == {"client-1"}
    assert server.introspections == 1
    await v.check(TOK)  # finished lookups are forgotten: with the cache off, ask again
    assert server.introspections == 2


async def test_concurrent_failures_reach_every_waiter() -> None:
    server = FakeIntrospectionServer()
    v = verifier(server.transport(), clock=Clock())
    results = await asyncio.gather(*(v.check("bad") for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, InvalidTokenError) for r in results)
    assert server.introspections == 1


async def test_cancelled_waiter_does_not_cancel_shared_lookup() -> None:
    server = FakeIntrospectionServer()
    server.grant("tok")
    v = verifier(server.transport(), clock=Clock())
    first = asyncio.ensure_future(v.check(TOK))
    second = asyncio.ensure_future(v.check(TOK))
    await asyncio.sleep(0)
    first.cancel()
    assert (await second).client_id == "client-1"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_concurrent_first_requests_fetch_metadata_once() -> None:
    server = FakeIntrospectionServer()
    for n in range(4):
        server.grant(f"tok{n}")
    v = verifier(server.transport(), clock=Clock())
    await asyncio.gather(*(v.check(access_token(f"tok{n}")) for n in range(4)))
    assert server.metadata_fetches == 1
    assert server.introspections == 4


NEW_CREDENTIALS = ResourceCredentials("weather-rs-2", "rs-secret-2")


def _accepting(credentials: ResourceCredentials) -> httpx2.MockTransport:
    """An authorization server that takes only `credentials` (as after a reset of oauth.py)."""
    wanted = basic_auth(credentials)

    def handle(request: httpx2.Request) -> httpx2.Response:
        expected = next(wanted.auth_flow(httpx2.Request("POST", "http://x"))).headers
        if request.headers.get("authorization") != expected["authorization"]:
            return httpx2.Response(401, json={"error": "invalid_client"})
        return httpx2.Response(200, json=ACTIVE)

    return _transport(handle)


ACTIVE = {"active": True, "aud": RESOURCE, "iss": ISSUER, "scope": "weather:read"}


async def test_refused_credentials_are_read_again_and_the_check_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """oauth.py's data folder was reset: new credentials in resource-servers.json."""
    reads: list[str] = []

    def reload() -> ResourceCredentials:
        reads.append("read")
        return NEW_CREDENTIALS

    v = verifier(_accepting(NEW_CREDENTIALS), ttl=0, size=10, reload_credentials=reload)
    caplog.set_level("INFO", logger="secure_mcp.weather.rfc7662")
    results = await asyncio.gather(*(v.check(access_token(f"t{i}")) for i in range(5)))
    assert all(result.scopes == ["weather:read"] for result in results)
    assert reads == ["read"]  # concurrent refusals share one re-read
    assert [r.getMessage() for r in caplog.records] == [
        "the authorization server refused the introspection credentials of weather-rs; "
        "read them again: now introspecting as weather-rs-2"
    ]
    await v.check(access_token("later"))
    assert reads == ["read"]


@pytest.mark.parametrize("reloaded", [CREDENTIALS, None], ids=["unchanged", "unreadable"])
async def test_credentials_still_refused_are_a_503_saying_tokens_cannot_be_checked(
    reloaded: ResourceCredentials | None, caplog: pytest.LogCaptureFixture
) -> None:
    v = verifier(_accepting(NEW_CREDENTIALS), ttl=0, size=10, reload_credentials=lambda: reloaded)
    for _ in range(3):
        with pytest.raises(IntrospectionRefusedError) as caught:
            await v.check(TOK)
    assert caught.value.status == 503
    assert caught.value.error == "introspection_refused"
    refusals = [r for r in caplog.records if "refuses" in r.getMessage()]
    assert len(refusals) == 1  # said once, not at every request


async def test_requests_refused_together_read_the_credentials_once() -> None:
    """Five requests all refused before the first re-read: one read, all retried with it."""
    refused = asyncio.Event()
    answers = {"refused": 0}
    wanted = basic_auth(NEW_CREDENTIALS)
    expected = next(wanted.auth_flow(httpx2.Request("POST", "http://x"))).headers["authorization"]

    class Slow(httpx2.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            if request.url.path.startswith("/.well-known"):
                meta = {"issuer": ISSUER, "introspection_endpoint": f"{ISSUER}/introspect"}
                return httpx2.Response(200, json=meta)
            if request.headers.get("authorization") != expected:
                answers["refused"] += 1
                if answers["refused"] == 5:
                    refused.set()
                await refused.wait()  # every request is refused before any re-read
                return httpx2.Response(401, json={"error": "invalid_client"})
            return httpx2.Response(200, json=ACTIVE)

    reads: list[str] = []

    def reload() -> ResourceCredentials:
        reads.append("read")
        return NEW_CREDENTIALS

    v = verifier(Slow(), ttl=0, size=10, reload_credentials=reload)
    await asyncio.gather(*(v.check(access_token(f"t{i}")) for i in range(5)))
    assert reads == ["read"]
    assert answers["refused"] == 5
