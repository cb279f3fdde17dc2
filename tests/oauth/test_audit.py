"""The audit log (`--audit-log`): one JSON line per security event, never a secret."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from secure_mcp.common.private_files import UnsafePathError
from secure_mcp.oauth.audit import AuditLog
from secure_mcp.oauth.banner import banner
from secure_mcp.oauth.settings import settings_from
from tests.support.headless import _FormParser
from tests.support.oauth_harness import RESOURCE, Flow, Harness, pkce, running_harness
from tests.support.oauth_server import TEST_PASSWORD, make_oauth_app, running_oauth_app

WRONG_PASSWORD = "wrong-password-typed-by-mistake"
COMMON = {"time", "event", "client_id", "user", "resource", "source"}


def lines(path: Path) -> list[dict[str, Any]]:
    """The audit file's lines as JSON objects."""
    return [json.loads(line) for line in path.read_text(encoding="ascii").splitlines()]


@pytest.fixture
async def audited(tmp_path: Path) -> AsyncIterator[tuple[Harness, Path]]:
    """The server in process with `--audit-log tmp_path/audit.jsonl`."""
    path = tmp_path / "audit.jsonl"
    async with running_oauth_app(tmp_path, audit_log=str(path)) as (app, settings):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=settings.issuer) as http:
            yield Harness(app, settings, http), path


async def wrong_password(oauth: Harness, flow: Flow) -> list[str]:
    """Post a wrong password on the flow's login page; the hidden values it carried."""
    page = await oauth.http.get(oauth.authorization_url(flow))
    form = _FormParser()
    form.feed(page.text)
    data = {**form.hidden, "username": "demo", "password": WRONG_PASSWORD}
    answer = await oauth.http.post("/authorize", data=data)
    assert "Wrong username or password" in answer.text
    return list(form.hidden.values())


async def test_every_event_is_one_json_line_without_any_secret(
    audited: tuple[Harness, Path],
) -> None:
    oauth, path = audited
    secrets: list[str] = [TEST_PASSWORD, WRONG_PASSWORD]
    confidential = await oauth.register(token_endpoint_auth_method="client_secret_post")
    secrets.append(confidential["client_secret"])
    client = await oauth.register()  # public, loopback: consent is asked every time
    verifier, challenge = pkce()
    flow = Flow(client, verifier, challenge)
    secrets += await wrong_password(oauth, flow)
    await oauth.authorize(flow)
    secrets += [flow.code, flow.verifier]
    auth: dict[str, str] = {}
    first = (await oauth.redeem(flow, **auth)).json()
    secrets += [first["access_token"], first["refresh_token"]]
    assert (await oauth.redeem(flow, **auth)).status_code == 400  # code reuse: family revoked
    flow2 = Flow(client, *pkce())
    await oauth.authorize(flow2)
    second = (await oauth.redeem(flow2, **auth)).json()
    refreshed = await oauth.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": second["refresh_token"],
            "client_id": client["client_id"],
            **auth,
        }
    )
    secrets += [flow2.code, second["access_token"], second["refresh_token"]]
    secrets += [refreshed.json()["access_token"], refreshed.json()["refresh_token"]]
    reused = await oauth.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": second["refresh_token"],
            "client_id": client["client_id"],
            **auth,
        }
    )
    assert reused.status_code == 400
    denied = Flow(client, *pkce())
    await oauth.authorize(denied, decision="deny")
    third = Flow(client, *pkce())
    await oauth.authorize(third)
    tokens3 = (await oauth.redeem(third, **auth)).json()
    secrets += [third.code, tokens3["access_token"], tokens3["refresh_token"]]
    revoke = {"token": tokens3["refresh_token"], "client_id": client["client_id"], **auth}
    assert (await oauth.http.post("/revoke", data=revoke)).status_code == 200
    secrets += [cookie.value for cookie in oauth.http.cookies.jar]

    text = path.read_text(encoding="ascii")
    for secret in secrets:
        assert secret not in text
    registered, *events = lines(path)
    assert registered["event"] == "client_registered"
    assert registered["client_id"] == confidential["client_id"]
    assert registered["auth_method"] == "client_secret_post"
    assert [e["event"] for e in events] == [
        "client_registered",
        "sign_in_failed",
        "sign_in",
        "consent_allowed",
        "code_issued",
        "token_issued",
        "code_reuse_detected",
        "sign_in",
        "consent_allowed",
        "code_issued",
        "token_issued",
        "token_refreshed",
        "refresh_token_reuse_detected",
        "sign_in",
        "consent_denied",
        "sign_in",
        "consent_allowed",
        "code_issued",
        "token_issued",
        "token_revoked",
    ]
    for event in events:
        assert set(event) >= COMMON
        assert event["client_id"] == client["client_id"]
        assert event["source"] == "127.0.0.1"
        assert event["time"].endswith("Z")
    assert events[0]["user"] is None
    assert events[1]["user"] == "demo"  # the account name, never what was typed as password
    assert all(e["user"] == "demo" for e in events[1:])
    assert all(e["resource"] == RESOURCE for e in events[1:])
    assert events[3]["remembered"] is False
    assert events[5]["grant_type"] == "authorization_code"
    assert events[6]["family"] == events[5]["family"]
    assert events[12]["family"] == events[11]["family"] == events[10]["family"]
    assert events[-1]["token_type"] == "refresh_token"


async def test_a_name_that_is_not_an_account_is_not_logged(audited: tuple[Harness, Path]) -> None:
    oauth, path = audited
    flow = Flow(await oauth.register(), *pkce())
    page = await oauth.http.get(oauth.authorization_url(flow))
    form = _FormParser()
    form.feed(page.text)
    typed = "my-password-in-the-wrong-field"
    await oauth.http.post("/authorize", data={**form.hidden, "username": typed, "password": "x"})
    (failed,) = [e for e in lines(path) if e["event"] == "sign_in_failed"]
    assert failed["user"] == "(unknown account)"
    assert typed not in path.read_text(encoding="ascii")


async def test_throttled_sign_in_and_remembered_consent(tmp_path: Path) -> None:
    from secure_mcp.common.ratelimit import Rate

    path = tmp_path / "audit.jsonl"
    overrides = {"audit_log": str(path), "login_failures_per_account": Rate(1, 300)}
    async with running_harness(tmp_path, **overrides) as oauth:
        https = {"redirect_uris": ["https://app.example/cb"]}
        client = await oauth.register(token_endpoint_auth_method="client_secret_basic", **https)
        for _ in range(2):
            flow = Flow(client, *pkce(), redirect_uri="https://app.example/cb")
            await oauth.authorize(flow)
        await wrong_password_then_throttled(
            oauth, Flow(client, *pkce(), "s", https["redirect_uris"][0])
        )
    events = [e["event"] for e in lines(path)]
    assert events[-2:] == ["sign_in_failed", "sign_in_throttled"]
    remembered = [e for e in lines(path) if e["event"] == "consent_allowed"]
    assert [e["remembered"] for e in remembered] == [False, True]


async def wrong_password_then_throttled(oauth: Harness, flow: Flow) -> None:
    """One wrong password, then the account is throttled (429)."""
    page = await oauth.http.get(oauth.authorization_url(flow))
    form = _FormParser()
    form.feed(page.text)
    data = {**form.hidden, "username": "demo", "password": WRONG_PASSWORD}
    assert (await oauth.http.post("/authorize", data=data)).status_code == 200
    assert (await oauth.http.post("/authorize", data=data)).status_code == 429


async def test_the_file_is_created_0600_and_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"earlier":"line"}\n')
    path.chmod(0o600)
    async with running_oauth_app(tmp_path, audit_log=str(path)) as (app, settings):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=settings.issuer) as http:
            await Harness(app, settings, http).register()
    assert [e.get("event") for e in lines(path)] == [None, "client_registered"]
    fresh = tmp_path / "fresh.jsonl"
    make_oauth_app(tmp_path, audit_log=str(fresh))
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_a_file_others_may_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "audit.jsonl"
    path.touch()
    path.chmod(mode)
    with pytest.raises(UnsafePathError, match="writable by other users"):
        make_oauth_app(tmp_path, audit_log=str(path))


def test_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.touch(mode=0o600)
    link = tmp_path / "audit.jsonl"
    link.symlink_to(target)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        AuditLog(link)


def test_stdout_and_off(capsys: pytest.CaptureFixture[str]) -> None:
    AuditLog("-").record("client_registered", client_id="abc")
    line = json.loads(capsys.readouterr().out)
    assert line["event"] == "client_registered"
    assert line["client_id"] == "abc"
    assert line["source"] is None
    off = AuditLog(None)
    off.record("client_registered", client_id="abc")
    off.close()
    assert not off.enabled
    assert capsys.readouterr().out == ""


def test_only_known_fields_may_be_logged(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    with pytest.raises(ValueError, match="not an audit field"):
        log.record("token_issued", access_token="smcp_at_x")
    log.close()
    log.close()  # idempotent
    assert (tmp_path / "audit.jsonl").read_text() == ""


def test_flag_environment_and_banner(tmp_path: Path) -> None:
    env = {"OAUTH_DEMO_PASSWORD": TEST_PASSWORD, "OAUTH_DATA_DIR": str(tmp_path)}
    assert settings_from([], env).audit_log is None
    assert "audit log:   off" in "\n".join(banner(settings_from([], env)))
    from_env = settings_from([], {**env, "OAUTH_AUDIT_LOG": "-"})
    assert from_env.audit_log == "-"
    assert "audit log:   stdout" in "\n".join(banner(from_env))
    flag = settings_from(["--audit-log", "/var/log/oauth.jsonl"], {**env, "OAUTH_AUDIT_LOG": "-"})
    assert flag.audit_log == "/var/log/oauth.jsonl"
    assert "audit log:   /var/log/oauth.jsonl" in "\n".join(banner(flag))
    assert os.fspath(dataclasses.replace(flag, audit_log=None).data_dir) == str(tmp_path)
