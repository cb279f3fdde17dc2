"""The real oauth.py with `--audit-log` and `--metrics`: lines and counters of a whole flow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.flows import live_auth
from tests.support.oauth_harness import RESOURCE
from tests.support.oauth_server import TEST_PASSWORD, oauth_child_env, run_oauth_server
from tests.support.processes import ROOT, free_port

pytestmark = pytest.mark.process


async def test_audit_log_and_metrics_of_a_whole_flow(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    env = {"OAUTH_AUDIT_LOG": str(audit), "OAUTH_METRICS": "1"}
    with run_oauth_server(tmp_path, extra_env=env) as server:
        assert f"audit log:   {audit}" in server.program.output()
        async with live_auth(server, RESOURCE) as auth:
            flow, tokens = await auth.tokens()
            refreshed = await auth.refresh(flow, tokens["refresh_token"])
            assert refreshed.status_code == 200
            assert (await auth.revoke(flow, refreshed.json()["refresh_token"])).status_code == 200
            foreign = await auth.http.get(
                f"{server.issuer}/metrics", headers={"host": "evil.example"}
            )
            metrics = await auth.http.get(f"{server.issuer}/metrics")
    assert foreign.status_code == 421  # DNS rebinding: the Host check still applies
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'oauth_tokens_issued_total{grant_type="authorization_code"} 1.0' in text
    assert 'oauth_tokens_issued_total{grant_type="refresh_token"} 1.0' in text
    assert 'oauth_http_requests_total{endpoint="/token",status="2xx"} 2.0' in text
    assert 'oauth_http_requests_total{endpoint="/metrics",status="4xx"} 1.0' in text
    assert 'oauth_http_request_duration_seconds_count{endpoint="/register"} 1.0' in text
    assert stat_mode(audit) == 0o600
    logged = audit.read_text(encoding="ascii")
    for secret in (TEST_PASSWORD, flow.code, flow.verifier, *tokens.values()):
        if isinstance(secret, str) and len(secret) > 20:
            assert secret not in logged
    for value in refreshed.json().values():
        assert not isinstance(value, str) or len(value) < 20 or value not in logged
    events = [json.loads(line)["event"] for line in logged.splitlines()]
    assert events == [
        "client_registered",
        "sign_in",
        "consent_allowed",
        "code_issued",
        "token_issued",
        "token_refreshed",
        "token_revoked",
    ]


def stat_mode(path: Path) -> int:
    """The permission bits of `path`."""
    return path.stat().st_mode & 0o777


def test_an_audit_log_others_may_write_stops_oauth_py(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    audit.touch()
    audit.chmod(0o666)
    env = {**os.environ, **oauth_child_env({"OAUTH_AUDIT_LOG": str(audit)})}
    data = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "oauth.py", "--data-dir", str(data), "--port", str(free_port())],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == (
        f"oauth.py: the file {audit} is writable by other users (mode 0666): they could plant "
        f"files there; check its contents, then run `chmod go-w {audit}`, or use another one\n"
    )
    assert audit.read_text() == ""
