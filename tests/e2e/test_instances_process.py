"""Two real oauth.py processes, one issuer, one PostgreSQL database: one server.

Both are started at the same moment on an empty database (one migrates, the other waits);
`TcpBalancer` is the load balancer the issuer URL points at (round robin per connection).
Each guarantee of docs/deployment.md's "Several instances" table has its test here.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import pytest

from secure_mcp.common.resource_credentials import CREDENTIALS_FILE, load_all
from secure_mcp.oauth.schema import head
from tests.support.flows import mcp_post
from tests.support.headless import authorize_headlessly
from tests.support.instances import Instances, TcpBalancer, run_instances
from tests.support.oauth_harness import Flow, pkce, query_of
from tests.support.oauth_server import TEST_PASSWORD, TEST_USERNAME, oauth_child_env
from tests.support.postgres import Cluster
from tests.support.processes import ROOT, free_port
from tests.support.weather_server import run_weather_server

pytestmark = pytest.mark.process

RESOURCE = f"http://127.0.0.1:{free_port()}/mcp"  # the weather.py of the revocation test
REDIRECT = "http://127.0.0.1:9/callback"
HTTPS_REDIRECT = "https://app.example/cb"


@pytest.fixture(scope="module")
def database(postgres: Cluster) -> str:
    return postgres.new_database()


@pytest.fixture(scope="module")
def instances(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instances]:
    resources = {"OAUTH_RESOURCES": RESOURCE}
    with run_instances(
        tmp_path_factory.mktemp("instances"), database, extra_env=resources
    ) as started:
        yield started
    for server in started.servers:
        assert "Traceback" not in server.program.output()


@pytest.fixture
async def balancer(instances: Instances) -> AsyncIterator[TcpBalancer]:
    ports = [server.port for server in instances.servers]
    async with TcpBalancer(instances.balancer_port, ports) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    """A browser-like client opening a connection per request (so the balancer alternates)."""
    limits = httpx2.Limits(max_keepalive_connections=0)
    async with httpx2.AsyncClient(timeout=20, limits=limits) as client:
        yield client


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, html
    return match.group(1)


def authorization_url(base: str, flow: Flow) -> str:
    return (
        f"{base}/authorize?response_type=code&client_id={flow.client['client_id']}"
        f"&redirect_uri={flow.redirect_uri}&code_challenge={flow.challenge}"
        f"&code_challenge_method=S256&state={flow.state}&resource={RESOURCE}&scope=weather:read"
    )


async def register(http: httpx2.AsyncClient, base: str, **metadata: object) -> Flow:
    body = {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"], **metadata}  # fmt: skip
    response = await http.post(f"{base}/register", json=body)
    assert response.status_code == 201, response.text
    client = response.json()
    return Flow(client, *pkce(), redirect_uri=client["redirect_uris"][0])


async def authorize(http: httpx2.AsyncClient, base: str, flow: Flow) -> None:
    location = await authorize_headlessly(
        http, authorization_url(base, flow), username=TEST_USERNAME, password=TEST_PASSWORD
    )
    flow.code = query_of(location)["code"]


def code_grant(flow: Flow) -> dict[str, str]:
    return {"grant_type": "authorization_code", "code": flow.code, "code_verifier": flow.verifier,
            "client_id": flow.client["client_id"], "resource": RESOURCE}  # fmt: skip


def refresh_grant(flow: Flow, token: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": token,
            "client_id": flow.client["client_id"]}  # fmt: skip


async def introspect(
    http: httpx2.AsyncClient, instances: Instances, index: int, token: str
) -> bool:
    cred = load_all(instances.servers[index].data_dir)[RESOURCE]
    response = await http.post(
        f"{instances.direct(index)}/introspect",
        data={"token": token},
        auth=(cred.client_id, cred.client_secret),
    )
    assert response.status_code == 200, response.text
    return bool(response.json()["active"])


def test_started_together_on_an_empty_database_they_migrate_once(
    instances: Instances, postgres: Cluster, database: str
) -> None:
    name = database.rsplit("/", 1)[1]
    assert postgres.psql("SELECT version_num FROM alembic_version", name).split() == [head()]
    for server in instances.servers:
        assert httpx2.get(f"http://127.0.0.1:{server.port}/health").status_code == 200


async def test_every_step_through_the_balancer_lands_on_both(
    instances: Instances, balancer: TcpBalancer, http: httpx2.AsyncClient
) -> None:
    """A client registered at one instance signs in, redeems and refreshes at the others."""
    issuer = instances.issuer
    meta = (await http.get(f"{issuer}/.well-known/oauth-authorization-server")).json()
    assert meta["issuer"] == issuer
    flow = await register(http, issuer)
    await authorize(http, issuer, flow)
    body = (await http.post(f"{issuer}/token", data=code_grant(flow))).json()
    refreshed = await http.post(f"{issuer}/token", data=refresh_grant(flow, body["refresh_token"]))
    assert refreshed.status_code == 200, refreshed.text
    access = refreshed.json()["access_token"]
    assert await introspect(http, instances, 0, access)
    assert await introspect(http, instances, 1, access)
    assert min(balancer.connections) >= 3


async def test_a_code_raced_at_both_instances_is_redeemed_once(
    instances: Instances, http: httpx2.AsyncClient
) -> None:
    for _ in range(5):
        flow = await register(http, instances.direct(0))
        await authorize(http, instances.direct(1), flow)
        answers = await asyncio.gather(
            *(http.post(f"{instances.direct(i % 2)}/token", data=code_grant(flow))
              for i in range(4))
        )  # fmt: skip
        assert sorted(a.status_code for a in answers) == [200, 400, 400, 400]
        winner = next(a for a in answers if a.status_code == 200).json()
        # the replays revoked the winner's tokens (RFC 6749 10.5), as seen from both
        assert not await introspect(http, instances, 0, winner["access_token"])
        assert not await introspect(http, instances, 1, winner["access_token"])


async def test_refresh_reuse_at_the_other_instance_revokes_the_family(
    instances: Instances, http: httpx2.AsyncClient
) -> None:
    flow = await register(http, instances.direct(0))
    await authorize(http, instances.direct(0), flow)
    first = (await http.post(f"{instances.direct(0)}/token", data=code_grant(flow))).json()
    rotated = await http.post(
        f"{instances.direct(0)}/token", data=refresh_grant(flow, first["refresh_token"])
    )
    assert rotated.status_code == 200
    reused = await http.post(
        f"{instances.direct(1)}/token", data=refresh_grant(flow, first["refresh_token"])
    )
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    newest = rotated.json()
    assert not await introspect(http, instances, 0, newest["access_token"])
    again = await http.post(
        f"{instances.direct(0)}/token", data=refresh_grant(flow, newest["refresh_token"])
    )
    assert again.status_code == 400


async def test_revocation_at_one_instance_stops_the_token_at_weather(
    instances: Instances, balancer: TcpBalancer, http: httpx2.AsyncClient, tmp_path: Path
) -> None:
    """weather.py introspects through the balancer (both instances), with no cache."""
    flow = await register(http, instances.direct(0))
    await authorize(http, instances.direct(1), flow)
    body = (await http.post(f"{instances.direct(0)}/token", data=code_grant(flow))).json()
    port = int(RESOURCE.rsplit(":", 1)[1].split("/")[0])
    with run_weather_server(
        tmp_path,
        auth_server=instances.issuer,
        oauth_data_dir=instances.servers[1].data_dir,
        port=port,
        extra_args=("--introspection-cache-ttl", "0"),
    ) as weather:
        before = [await mcp_post(weather.url, body["access_token"]) for _ in range(4)]
        used = balancer.connections.index(max(balancer.connections))
        revoked = await http.post(  # at the instance weather.py's connection does not reach
            f"{instances.direct(1 - used)}/revoke",
            data={"token": body["access_token"], "client_id": flow.client["client_id"]},
        )
        assert revoked.status_code == 200
        after = [await mcp_post(weather.url, body["access_token"]) for _ in range(4)]
    assert [r.status_code for r in before] == [200] * 4
    assert [r.status_code for r in after] == [401] * 4
    assert sum(balancer.connections) >= 1  # weather.py introspected through the balancer


async def test_sign_in_and_consent_span_instances(
    instances: Instances, http: httpx2.AsyncClient
) -> None:
    """Login page at one, password at the other, consent back at the first; and remembered."""
    one, two = instances.direct(0), instances.direct(1)
    flow = await register(
        http, one, token_endpoint_auth_method="client_secret_basic", redirect_uris=[HTTPS_REDIRECT]
    )
    page = await http.get(authorization_url(one, flow))
    fields = {name: hidden(page.text, name) for name in ("csrf_token", "tx")}
    login = await http.post(
        f"{two}/authorize", data={**fields, "username": TEST_USERNAME, "password": TEST_PASSWORD}
    )
    assert login.status_code == 303, login.text
    consent = await http.get(one + login.headers["location"])
    decided = await http.post(
        f"{two}/authorize",
        data={"csrf_token": hidden(consent.text, "csrf_token"), "tx": hidden(consent.text, "tx"),
              "decision": "allow"},
    )  # fmt: skip
    assert decided.status_code == 303
    assert "code=" in decided.headers["location"]
    again = Flow(flow.client, *pkce(), redirect_uri=HTTPS_REDIRECT)
    await authorize(http, two, again)  # no consent page: remembered through the other instance
    assert again.code


def test_secrets_are_in_the_database_not_in_a_data_folder(instances: Instances) -> None:
    folders = [server.data_dir for server in instances.servers]
    assert folders[0] != folders[1]
    for folder in folders:
        assert sorted(path.name for path in folder.iterdir()) == [CREDENTIALS_FILE]
    assert load_all(folders[0]) == load_all(folders[1])


async def test_rate_limits_and_login_throttling_are_shared(
    postgres: Cluster, tmp_path: Path, http: httpx2.AsyncClient
) -> None:
    strict = {
        "OAUTH_RESOURCES": RESOURCE,
        "OAUTH_REGISTER_RATE": "3/60",
        "OAUTH_LOGIN_FAILURES_PER_ACCOUNT": "2/300",
    }
    with run_instances(tmp_path, postgres.new_database(), extra_env=strict) as pair:
        one, two = pair.direct(0), pair.direct(1)
        flow = await register(http, one)
        for base in (two, one):
            assert (await http.post(f"{base}/register", json={})).status_code == 400
        for base in (two, one):
            assert (await http.post(f"{base}/register", json={})).status_code == 429
        for first, second, password, expected in (
            (one, two, "wrong", 200), (two, one, "wrong", 200), (one, two, TEST_PASSWORD, 429)
        ):  # fmt: skip
            page = await http.get(authorization_url(first, flow))
            fields = {name: hidden(page.text, name) for name in ("csrf_token", "tx")}
            answer = await http.post(
                f"{second}/authorize",
                data={**fields, "username": TEST_USERNAME, "password": password},
            )
            assert answer.status_code == expected, answer.text


def test_a_database_of_a_newer_schema_is_refused_with_one_line(
    postgres: Cluster, tmp_path: Path
) -> None:
    url = postgres.new_database()
    name = url.rsplit("/", 1)[1]
    postgres.psql("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)", name)
    postgres.psql("INSERT INTO alembic_version VALUES ('9999')", name)
    result = subprocess.run(
        [sys.executable, str(ROOT / "oauth.py"), "--port", "0", "--host", "127.0.0.1",
         "--issuer", "http://127.0.0.1:9", "--data-dir", str(tmp_path / "d"),
         "--database-url", url],
        cwd=ROOT, env={**os.environ, **oauth_child_env()}, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("oauth.py: the database schema is at revision 9999")
