"""Introspection credentials: environment, shared file or generated; only hashes in the DB."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import httpx2
from sqlalchemy import select

from secure_mcp.common import resource_credentials as rc
from secure_mcp.oauth.models import ResourceServer
from secure_mcp.oauth.resource_servers import resolve_credentials
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.storage import Database, token_hash
from tests.support.oauth_harness import RESOURCE, Harness
from tests.support.oauth_server import running_oauth_app

OTHER = "http://127.0.0.1:8001/mcp"


def test_generated_once_then_reused(tmp_path: Path) -> None:
    settings = OAuthSettings(data_dir=tmp_path, demo_password="x" * 12, resources=(RESOURCE, OTHER))
    first = resolve_credentials(settings)
    assert set(first) == {RESOURCE, OTHER}
    assert first[RESOURCE].client_id != first[OTHER].client_id
    assert len(first[RESOURCE].client_secret) >= 43
    assert stat.S_IMODE(rc.credentials_path(tmp_path).stat().st_mode) == 0o600
    assert resolve_credentials(settings) == first
    assert rc.load_all(tmp_path) == first


def test_environment_applies_to_the_first_resource(tmp_path: Path) -> None:
    env_creds = rc.ResourceCredentials("env-id", "env-secret")
    settings = OAuthSettings(
        data_dir=tmp_path,
        demo_password="x" * 12,
        resources=(RESOURCE, OTHER),
        introspection_credentials=env_creds,
    )
    chosen = resolve_credentials(settings)
    assert chosen[RESOURCE] == env_creds
    assert RESOURCE not in rc.load_all(tmp_path)  # the environment's secret is never written
    assert rc.load_all(tmp_path)[OTHER] == chosen[OTHER]


async def test_database_keeps_only_hashes(tmp_path: Path) -> None:
    env_creds = rc.ResourceCredentials("env-id", "env-secret")
    async with running_oauth_app(tmp_path, introspection_credentials=env_creds) as (app, settings):
        db = Database(settings.data_dir)
        async with db.read() as session:
            rows = (await session.scalars(select(ResourceServer))).all()
        await db.close()
        assert [(r.client_id, r.resource) for r in rows] == [("env-id", RESOURCE)]
        assert rows[0].secret_hash == token_hash("env-secret")
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=settings.issuer) as client:
            oauth = Harness(app, settings, client)
            flow = await oauth.new_flow()
            body = (await oauth.redeem(flow)).json()
            response = await client.post(
                "/introspect", data={"token": body["access_token"]}, auth=("env-id", "env-secret")
            )
            assert response.json()["active"] is True
            bad_form = await client.post(
                "/introspect", json={"token": "x"}, auth=("env-id", "env-secret")
            )
            assert bad_form.status_code == 400
            assert bad_form.json()["error"] == "invalid_request"


async def test_removed_resource_loses_access(tmp_path: Path) -> None:
    async with running_oauth_app(tmp_path, resources=(RESOURCE, OTHER)):
        pass
    old = rc.load_all(tmp_path / "oauth-data")[OTHER]
    async with running_oauth_app(tmp_path) as (app, settings):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=settings.issuer) as client:
            response = await client.post(
                "/introspect", data={"token": "x"}, auth=(old.client_id, old.client_secret)
            )
            assert response.status_code == 401
    assert dataclasses.is_dataclass(settings)
