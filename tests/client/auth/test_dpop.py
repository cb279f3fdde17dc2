"""The client's DPoP transport on scripted servers: what it adds, retries, records and refuses."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx2
import pytest

from secure_mcp.client.auth.dpop import KEYS_FILE, MAX_BOUND, DpopKeys, DpopTransport
from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.common.rfc9449 import check_proof, jwk_thumbprint

ISSUER = "http://as.test"
TOKEN_URL = f"{ISSUER}/token"
MCP_URL = "http://rs.test/mcp"
METADATA = {
    "issuer": ISSUER,
    "token_endpoint": TOKEN_URL,
    "dpop_signing_alg_values_supported": ["ES256", "PS256"],
}


class Script:
    """A scripted server: answers in order, every request kept."""

    def __init__(self, *answers: httpx2.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.answers.pop(0)


def transport(tmp_path: Path, script: Script) -> tuple[DpopTransport, list[Any], list[str]]:
    reports: list[Any] = []
    lines: list[str] = []
    keys = DpopKeys(tmp_path / "state")
    return (
        DpopTransport(httpx2.MockTransport(script), keys, reports.append, lines.append),
        (reports),
        lines,
    )


async def send(t: DpopTransport, method: str, url: str, **kwargs: Any) -> httpx2.Response:
    async with httpx2.AsyncClient(transport=t) as http:
        return await http.request(method, url, **kwargs)


async def test_a_dpop_server_gets_a_key_proofs_and_bound_tokens(tmp_path: Path) -> None:
    token_answer = {"access_token": "AT", "token_type": "DPoP", "expires_in": 60}
    script = Script(
        httpx2.Response(200, json=METADATA),
        httpx2.Response(400, json={"error": "use_dpop_nonce"}, headers={"DPoP-Nonce": "n1"}),
        httpx2.Response(200, json=token_answer, headers={"DPoP-Nonce": "n2"}),
        httpx2.Response(
            401, headers={"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": "r1"}
        ),
        httpx2.Response(200, json={"ok": True}),
    )
    t, reports, lines = transport(tmp_path, script)
    meta = await send(t, "GET", f"{ISSUER}/.well-known/oauth-authorization-server")
    assert meta.json() == METADATA
    answer = await send(t, "POST", TOKEN_URL, data={"grant_type": "authorization_code"})
    assert answer.json()["token_type"] == "Bearer"  # what the SDK's model accepts
    mcp = await send(t, "POST", MCP_URL, json={"x": 1}, headers={"Authorization": "Bearer AT"})
    assert mcp.status_code == 200
    script.answers.append(httpx2.Response(200, json={"ok": True}))
    again = await send(t, "POST", MCP_URL, json={"x": 2}, headers={"Authorization": "Bearer AT"})
    assert again.status_code == 200
    assert "nonce=" not in again.request.headers.get("x", "")
    assert sum("sending the DPoP-bound token" in line for line in lines) == 1
    assert reports == []
    first, retry = script.requests[1], script.requests[2]
    key = t.keys.key(ISSUER)
    assert key is not None
    jkt = jwk_thumbprint(key.as_dict(private=False))
    assert check_proof(first.headers["dpop"], method="POST", url=TOKEN_URL).jkt == jkt
    nonce_ok = "n1".__eq__
    checked = check_proof(
        retry.headers["dpop"], method="POST", url=TOKEN_URL, nonce_ok=nonce_ok, new_nonce=str
    )
    assert checked.jkt == jkt
    assert retry.content == first.content  # the same form, sent again
    refused, resent = script.requests[3], script.requests[4]
    assert refused.headers["authorization"] == "DPoP AT"
    assert check_proof(refused.headers["dpop"], method="POST", url=MCP_URL, access_token="AT")
    check_proof(
        resent.headers["dpop"],
        method="POST",
        url=MCP_URL,
        access_token="AT",
        nonce_ok="r1".__eq__,
        new_nonce=str,
    )
    assert resent.content == b'{"x":1}'
    assert any("supports DPoP" in line for line in lines)
    assert oct((tmp_path / "state" / KEYS_FILE).stat().st_mode & 0o777) == "0o600"


async def test_a_second_nonce_challenge_is_handed_back(tmp_path: Path) -> None:
    challenge = httpx2.Response(400, json={"error": "use_dpop_nonce"}, headers={"DPoP-Nonce": "n"})
    script = Script(
        httpx2.Response(200, json=METADATA),
        challenge,
        httpx2.Response(400, json={"error": "use_dpop_nonce"}, headers={"DPoP-Nonce": "m"}),
    )
    t, _, _ = transport(tmp_path, script)
    await send(t, "GET", f"{ISSUER}/.well-known/oauth-authorization-server")
    answer = await send(t, "POST", TOKEN_URL, data={"a": "b"})
    assert answer.status_code == 400
    assert len(script.requests) == 3  # one retry only


async def test_other_token_errors_pass_unchanged(tmp_path: Path) -> None:
    script = Script(
        httpx2.Response(200, json=METADATA),
        httpx2.Response(400, json={"error": "invalid_grant"}, headers={"DPoP-Nonce": "n"}),
        httpx2.Response(200, json={"access_token": "B", "token_type": "Bearer"}),
        httpx2.Response(200, json={"token_type": "DPoP"}),
        httpx2.Response(200, json={"ok": 1}),
    )
    t, _, lines = transport(tmp_path, script)
    await send(t, "GET", f"{ISSUER}/.well-known/openid-configuration")
    refused = await send(t, "POST", TOKEN_URL, data={"a": "b"})
    assert refused.json()["error"] == "invalid_grant"
    bearer = await send(t, "POST", TOKEN_URL, data={"a": "b"})
    assert bearer.json()["token_type"] == "Bearer"
    assert any("issued a bearer token" in line for line in lines)
    no_token = await send(t, "POST", TOKEN_URL, data={"a": "b"})
    assert no_token.json() == {"token_type": "DPoP"}  # unusable: the SDK will say so
    plain = await send(t, "POST", MCP_URL, headers={"Authorization": "Bearer B"})
    assert plain.status_code == 200
    assert script.requests[-1].headers["authorization"] == "Bearer B"  # not bound: untouched
    assert "dpop" not in script.requests[-1].headers


async def test_a_refusal_that_is_no_nonce_challenge_is_not_retried(tmp_path: Path) -> None:
    answer = {"access_token": "AT", "token_type": "DPoP"}
    refusal = {"WWW-Authenticate": 'DPoP error="invalid_token"', "DPoP-Nonce": "n"}
    script = Script(
        httpx2.Response(200, json=METADATA),
        httpx2.Response(200, json=answer),
        httpx2.Response(401, headers=refusal),
    )
    t, _, _ = transport(tmp_path, script)
    await send(t, "GET", f"{ISSUER}/.well-known/oauth-authorization-server")
    await send(t, "POST", TOKEN_URL, data={"a": "b"})
    refused = await send(t, "POST", MCP_URL, headers={"Authorization": "Bearer AT"})
    assert refused.status_code == 401
    assert len(script.requests) == 3


@pytest.mark.parametrize(
    "metadata",
    [
        {**METADATA, "dpop_signing_alg_values_supported": ["RS256"]},
        {k: v for k, v in METADATA.items() if k != "dpop_signing_alg_values_supported"},
        "not json",
    ],
    ids=["no-es256", "no-dpop", "not-json"],
)
async def test_servers_without_usable_dpop_get_bearer_requests(
    tmp_path: Path, metadata: Any
) -> None:
    body = json.dumps(metadata) if isinstance(metadata, dict) else metadata
    script = Script(httpx2.Response(200, content=body), httpx2.Response(200, json={}))
    t, _, lines = transport(tmp_path, script)
    await send(t, "GET", f"{ISSUER}/.well-known/oauth-authorization-server")
    await send(t, "POST", TOKEN_URL, data={"a": "b"})
    assert "dpop" not in script.requests[1].headers
    assert not (tmp_path / "state" / KEYS_FILE).exists()
    if metadata == script or (isinstance(metadata, dict) and "RS256" in str(metadata)):
        assert any("not ES256" in line for line in lines)


async def test_a_failed_metadata_answer_passes_unread(tmp_path: Path) -> None:
    script = Script(httpx2.Response(404, text="no"))
    t, _, _ = transport(tmp_path, script)
    response = await send(t, "GET", f"{ISSUER}/.well-known/oauth-authorization-server")
    assert response.status_code == 404


async def test_the_key_survives_and_follows_a_moved_token_endpoint(tmp_path: Path) -> None:
    keys = DpopKeys(tmp_path)
    key, made = keys.adopt(ISSUER, TOKEN_URL)
    again, made_again = DpopKeys(tmp_path).adopt(ISSUER, f"{ISSUER}/token2")
    assert made
    assert not made_again
    assert again.as_dict() == key.as_dict()
    assert DpopKeys(tmp_path).for_token_endpoint(f"{ISSUER}/token2") is not None
    assert DpopKeys(tmp_path).for_token_endpoint(TOKEN_URL) is None
    assert DpopKeys(tmp_path).adopt(ISSUER, f"{ISSUER}/token2")[1] is False
    for i in range(MAX_BOUND + 1):
        keys.bind(ISSUER, f"token-{i}")
    assert keys.bound_key("token-0") is None  # the oldest forgotten
    assert keys.bound_key(f"token-{MAX_BOUND}") is not None


async def test_an_unusable_key_file_stops_the_flow_with_a_report(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    path = state / KEYS_FILE
    path.write_text("{}")
    os.chmod(path, 0o666)  # noqa: S103 - writable by others: refused, never used
    script = Script(httpx2.Response(200, json=METADATA))
    t, reports, _ = transport(tmp_path, script)
    response = await send(t, "GET", f"{ISSUER}/.well-known/oauth-authorization-server")
    assert response.status_code == 503
    assert isinstance(reports[0], ClientConnectError)
    assert "cannot read" in str(reports[0])


async def test_a_damaged_key_entry_is_no_key(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    entry = {"jwk": {"kty": "EC"}, "token_endpoint": TOKEN_URL, "bound": ["x"]}
    (state / KEYS_FILE).write_text(json.dumps({"issuers": {ISSUER: entry, "odd": 5}}))
    os.chmod(state / KEYS_FILE, 0o600)
    keys = DpopKeys(state)
    assert keys.key(ISSUER) is None
    assert keys.for_token_endpoint(TOKEN_URL) is None
    assert keys.bound_key("anything") is None
    _, made = keys.adopt(ISSUER, TOKEN_URL)  # a new one replaces it
    assert made
    assert keys.key(ISSUER) is not None
    assert DpopKeys(state).key(ISSUER) is not None


async def test_an_unwritable_state_folder_is_reported(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file where the folder should be")
    script = Script(httpx2.Response(200, json=METADATA))
    t, reports, _ = transport(tmp_path, script)
    response = await send(t, "GET", f"{ISSUER}/.well-known/oauth-authorization-server")
    assert response.status_code == 503
    assert "cannot write" in str(reports[0])
