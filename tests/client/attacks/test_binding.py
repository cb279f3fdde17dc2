"""RFC 9700 4.4: a sign-in's code goes only to the token endpoint of the server it began with."""

from __future__ import annotations

import httpx2
import pytest
from mcp.shared.auth import OAuthMetadata

from secure_mcp.client.auth.binding import Flow, check_code_exchange, secure_url, start_flow
from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.auth.identity import document_identity_allowed
from tests.support.client_fakes import AS_ORIGIN, FakeAuthServer

EVIL_ORIGIN = "http://127.0.0.1:9100"
ISS_SUPPORTED = b'"authorization_response_iss_parameter_supported"'


def test_a_code_only_goes_to_the_token_endpoint_its_sign_in_started_with() -> None:
    ours = OAuthMetadata.model_validate(FakeAuthServer().metadata())
    other = OAuthMetadata.model_validate(
        FakeAuthServer(issuer=EVIL_ORIGIN, origin=EVIL_ORIGIN).metadata()
    )
    redirect = "http://127.0.0.1:5000/callback/x"
    flow = start_flow(ours, f"{AS_ORIGIN}/authorize?redirect_uri={redirect}&state=s")
    assert flow == Flow(AS_ORIGIN, f"{AS_ORIGIN}/token", redirect)

    def exchange(url: str, redirect_uri: str = redirect) -> httpx2.Request:
        return httpx2.Request("POST", url, data={"code": "c", "redirect_uri": redirect_uri})

    check_code_exchange(flow, ours, exchange(f"{AS_ORIGIN}/token"))
    for metadata, request in [
        (other, exchange(f"{EVIL_ORIGIN}/token")),  # the server changed under the sign-in
        (ours, exchange(f"{EVIL_ORIGIN}/token")),
        (ours, exchange(f"{AS_ORIGIN}/token", "http://127.0.0.1:5000/callback")),
    ]:
        with pytest.raises(ClientConnectError, match="mix-up protection"):
            check_code_exchange(flow, metadata, request)
    with pytest.raises(ClientConnectError, match="started with no sign-in"):
        check_code_exchange(None, ours, exchange(f"{AS_ORIGIN}/token"))
    with pytest.raises(ClientConnectError, match="not the authorization endpoint"):
        start_flow(ours, f"{EVIL_ORIGIN}/authorize?state=s")


@pytest.mark.parametrize(
    ("url", "secure"),
    [
        ("https://as.example/token", True),
        ("http://localhost:8003/token", True),
        ("http://127.0.0.2:8003/token", True),
        ("http://[::1]:8003/token", True),
        ("http://as.example/token", False),
        ("http://10.0.0.1/token", False),
        ("http:///token", False),
        ("ftp://localhost/token", False),
    ],
)
def test_only_https_or_this_machine(url: str, secure: bool) -> None:
    assert secure_url(url) is secure


@pytest.mark.parametrize(
    ("body", "allowed"),
    [
        (b'{"authorization_endpoint": "x", ' + ISS_SUPPORTED + b": true}", True),
        (b'{"authorization_endpoint": "x"}', False),
        (b'{"resource": "http://127.0.0.1:8000/mcp"}', None),  # the resource's document
        (b"[1]", None),
        (b"not json", None),
    ],
)
def test_a_metadata_document_identity_only_where_iss_is_sent(
    body: bytes, allowed: bool | None
) -> None:
    assert document_identity_allowed(body) is allowed
