"""App assembly: metadata, health, issuer with a path, session secret, lifespan, cleanup."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import stat
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import delete, func, select, update

from secure_mcp.common.private_files import UnsafePathError
from secure_mcp.oauth.app import session_secret
from secure_mcp.oauth.models import Client, Token
from secure_mcp.oauth.settings import OAuthSettings, SettingsError
from secure_mcp.oauth.storage import Database
from tests.support.oauth_harness import Flow, Harness, pkce, running_harness
from tests.support.oauth_server import make_oauth_app, running_oauth_app


async def test_metadata(oauth: Harness) -> None:
    response = await oauth.http.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    meta = response.json()
    issuer = "http://127.0.0.1:8003"
    assert meta["issuer"] == issuer  # byte-identical: no trailing slash
    assert meta["authorization_endpoint"] == f"{issuer}/authorize"
    assert meta["token_endpoint"] == f"{issuer}/token"
    assert meta["registration_endpoint"] == f"{issuer}/register"
    assert meta["introspection_endpoint"] == f"{issuer}/introspect"
    assert meta["revocation_endpoint"] == f"{issuer}/revoke"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["response_types_supported"] == ["code"]
    grants = ["authorization_code", "refresh_token", "client_credentials"]
    assert meta["grant_types_supported"] == grants
    assert "none" in meta["token_endpoint_auth_methods_supported"]
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    algorithms = meta["token_endpoint_auth_signing_alg_values_supported"]
    assert "ES256" in algorithms
    assert not {"none", "HS256"} & set(algorithms)
    assert meta["scopes_supported"] == ["weather:read"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["client_id_metadata_document_supported"] is True
    assert (await oauth.http.get("/.well-known/openid-configuration")).status_code == 404


async def test_health(oauth: Harness) -> None:
    response = await oauth.http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_issuer_with_path(tmp_path: Path) -> None:
    issuer = "http://127.0.0.1:8003/tenant"
    async with running_oauth_app(tmp_path, issuer=issuer) as (app, settings):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:8003"
        ) as client:
            path_inserted = await client.get("/.well-known/oauth-authorization-server/tenant")
            assert path_inserted.json()["issuer"] == issuer
            assert path_inserted.json()["token_endpoint"] == f"{issuer}/token"
            oauth = Harness(app, settings, client)
            response = await client.post(
                f"{issuer}/register",
                json={
                    "redirect_uris": ["http://127.0.0.1:1/cb"],
                    "token_endpoint_auth_method": "none",
                },
            )
            flow = Flow(response.json(), *pkce(), redirect_uri="http://127.0.0.1:1/cb")
            assert "code=" in await oauth.authorize(flow)
            body = await client.post(
                f"{issuer}/token",
                data={
                    "grant_type": "authorization_code",
                    "code": flow.code,
                    "redirect_uri": flow.redirect_uri,
                    "code_verifier": flow.verifier,
                    "client_id": flow.client["client_id"],
                },
            )
            assert body.status_code == 200, body.text


def test_session_secret_generated_once_and_private(tmp_path: Path) -> None:
    settings = OAuthSettings(data_dir=tmp_path / "d", demo_password="x" * 12)
    first = session_secret(settings)
    path = tmp_path / "d" / "session-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert session_secret(settings) == first
    path.write_text("\n")
    assert session_secret(settings) not in {first, ""}
    given = OAuthSettings(data_dir=tmp_path / "d", demo_password="x" * 12, session_secret="g" * 32)
    assert session_secret(given) == "g" * 32
    path.write_text("short-stored-key\n")  # an edited file must not weaken the key
    with pytest.raises(SettingsError, match=r"session-secret .*32 bytes"):
        session_secret(settings)


async def test_data_survives_restart_and_tokens_are_hashed(tmp_path: Path) -> None:
    async with running_harness(tmp_path) as oauth:
        flow = await oauth.new_flow(token_endpoint_auth_method="client_secret_post")
        body = (await oauth.redeem(flow, client_secret=flow.client["client_secret"])).json()
    raw = (oauth.settings.data_dir / "oauth.sqlite3").read_bytes()
    for secret in (body["access_token"], body["refresh_token"], flow.client["client_secret"]):
        assert secret.encode() not in raw
    assert stat.S_IMODE((oauth.settings.data_dir / "oauth.sqlite3").stat().st_mode) == 0o600
    async with running_harness(tmp_path) as oauth:
        assert (await oauth.introspect(body["access_token"]))["active"] is True


async def test_client_scope_no_longer_offered_after_restart(tmp_path: Path) -> None:
    both = ("weather:read", "weather:alerts")
    async with running_oauth_app(tmp_path, scopes=both) as (app, settings):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=settings.issuer) as client:
            registered = await Harness(app, settings, client).register(scope="weather:alerts")
    async with running_harness(tmp_path) as oauth:
        location = await oauth.authorize(Flow(registered, *pkce()), scope=None)
        assert "error=invalid_scope" in location


async def test_cleanup_runs_periodically(tmp_path: Path) -> None:
    async with running_harness(tmp_path, cleanup_interval=0.05) as oauth:
        flow = await oauth.new_flow()
        await oauth.redeem(flow)
        db = Database(oauth.settings.data_dir)
        async with db.write() as session:
            await session.execute(update(Token).values(expires_at=1))
        for _ in range(100):
            async with db.read() as session:
                left = await session.scalar(select(func.count()).select_from(Token))
            if left == 0:
                break
            await asyncio.sleep(0.02)
        await db.close()
        assert left == 0


async def test_deleted_client_mid_authorization(oauth: Harness) -> None:
    flow = Flow(await oauth.register(), *pkce())
    page = await oauth.http.get(oauth.authorization_url(flow))
    db = Database(oauth.settings.data_dir)
    async with db.write() as session:
        await session.execute(delete(Client))
    await db.close()
    fields = dict(re.findall(r'name="(csrf_token|tx)" value="([^"]*)"', page.text))
    response = await oauth.http.post(
        "/authorize", data={**fields, "username": "u", "password": "p"}
    )
    assert response.status_code == 400
    assert "no longer registered" in response.text


async def test_security_headers_on_json_too(oauth: Harness) -> None:
    response = await oauth.http.post("/token", data={})
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_a_database_of_the_earlier_version_is_upgraded(tmp_path: Path) -> None:
    data = tmp_path / "oauth-data"
    data.mkdir(mode=0o700)
    with sqlite3.connect(data / "oauth.sqlite3") as conn:  # the tables as version 0.1 made them
        conn.executescript(
            """
            CREATE TABLE clients (client_id VARCHAR(2048) PRIMARY KEY, secret_hash VARCHAR(64),
              token_endpoint_auth_method VARCHAR(32), redirect_uris JSON, grant_types JSON,
              scope VARCHAR(1024), client_name VARCHAR(256), registered JSON, issued_at INTEGER);
            INSERT INTO clients VALUES ('old', NULL, 'none', '["http://127.0.0.1/cb"]',
              '["authorization_code"]', NULL, 'Old', '{}', 1000);
            CREATE TABLE consents (id INTEGER PRIMARY KEY, browser_session VARCHAR(64));
            CREATE TABLE pending_requests (id INTEGER PRIMARY KEY, tx_hash VARCHAR(64));
            CREATE TABLE tokens (token_hash VARCHAR(64) PRIMARY KEY, kind VARCHAR(16),
              family_id VARCHAR(64), client_id VARCHAR(2048), subject VARCHAR(256),
              scope VARCHAR(1024), resource VARCHAR(2048), issued_at INTEGER,
              expires_at INTEGER, revoked BOOLEAN, rotated BOOLEAN);
            CREATE TABLE authorization_codes (code_hash VARCHAR(64) PRIMARY KEY,
              client_id VARCHAR(2048), redirect_uri VARCHAR(2048), code_challenge VARCHAR(128),
              resource VARCHAR(2048), scope VARCHAR(1024), subject VARCHAR(256),
              family_id VARCHAR(64), expires_at INTEGER, used BOOLEAN);
            """
        )
    async with running_oauth_app(tmp_path, unused_client_ttl=60) as (_, settings):
        db = Database(settings.data_dir)
        async with db.read() as session:
            old = await session.get(Client, "old")
        await db.close()
    assert old is not None
    assert old.authorized_at == 1000  # kept: a client from before is not judged unused
    with sqlite3.connect(data / "oauth.sqlite3") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert not tables & {"consents", "pending_requests"}
    assert {"user_consents", "pending_authorizations", "dpop_proofs"} <= tables
    with sqlite3.connect(data / "oauth.sqlite3") as conn:  # DPoP bindings (RFC 9449 6, 10)
        assert "jkt" in {row[1] for row in conn.execute("PRAGMA table_info(tokens)")}
        codes = {row[1] for row in conn.execute("PRAGMA table_info(authorization_codes)")}
        assert "dpop_jkt" in codes


def test_an_unsafe_data_folder_stops_the_start(tmp_path: Path) -> None:
    data = tmp_path / "shared"
    data.mkdir()
    data.chmod(0o777)
    with pytest.raises(UnsafePathError, match="writable by other users"):
        make_oauth_app(tmp_path, data_dir=data)
    data.chmod(0o700)
    (data / "session-secret").write_text("x" * 64)
    (data / "session-secret").chmod(0o646)
    with pytest.raises(UnsafePathError, match="session-secret is writable by other users"):
        make_oauth_app(tmp_path, data_dir=data)
