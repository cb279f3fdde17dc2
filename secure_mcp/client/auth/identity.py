"""Who the client is at each authorization server, and where each server sends the user back.

- A client registered here (RFC 7591) gets a redirect URI of its own per authorization server,
  `http://127.0.0.1:<port>/callback/<issuer tag>` (RFC 9700 4.4.2.2): mix-up protection that
  works without `iss`. A registration made before that (plain `/callback`) is made again.
- A pre-registered client is bound to one issuer (`--client-issuer`), so it meets no other.
- A metadata-document client (CIMD) has the document's one redirect URI at every server, so it
  needs RFC 9207 `iss` (RFC 9700 4.4.2.1): at a server that does not advertise `iss` the client
  registers instead (own redirect URI), and a stored document identity is refused there.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import httpx2
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthMetadata
from pydantic import AnyUrl

from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.settings import ISSUER_REQUIRED, ClientSettings


def client_metadata(settings: ClientSettings, redirect_uri: str) -> OAuthClientMetadata:
    """RFC 7591 metadata of a public native client with a loopback redirect (RFC 8252 8.4)."""
    return OAuthClientMetadata(
        redirect_uris=[AnyUrl(redirect_uri)],
        token_endpoint_auth_method="none",  # noqa: S106 - RFC 7591 2: a public client
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        client_name=settings.client_name,
        application_type="native",
    )


def pre_registered_client(
    settings: ClientSettings, redirect_uri: str
) -> OAuthClientInformationFull | None:
    """The configured pre-registered client, if any (RFC 6749 2.2; MCP client registration).

    With a secret it authenticates with HTTP Basic, which every server must support
    (RFC 6749 2.3.1); without one it is a public client. It is bound to `client_issuer`, so its
    credentials go to no other authorization server (`check_issuer`).
    """
    if not settings.client_id:
        return None
    if not settings.client_issuer:
        raise ClientConnectError(ISSUER_REQUIRED, "invalid_client")
    return OAuthClientInformationFull(
        client_id=settings.client_id,
        issuer=settings.client_issuer,
        client_secret=settings.client_secret or None,
        token_endpoint_auth_method="client_secret_basic" if settings.client_secret else "none",
        redirect_uris=[AnyUrl(redirect_uri)],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
    )


def is_document_client(client: OAuthClientInformationFull) -> bool:
    """A client identified by a metadata document URL (CIMD)."""
    return (client.client_id or "").startswith(("https://", "http://"))


def is_shared_identity(client: OAuthClientInformationFull, settings: ClientSettings) -> bool:
    """A pre-registered or metadata-document client: its redirect URI is fixed elsewhere."""
    return client.client_id == settings.client_id or is_document_client(client)


def registered_for(client: OAuthClientInformationFull, redirect_uri: str) -> bool:
    """The registration names `redirect_uri`'s path (loopback: any port, RFC 8252 7.3)."""
    path = urlsplit(redirect_uri).path
    return any(urlsplit(str(uri)).path == path for uri in client.redirect_uris or [])


def with_redirect_uri(request: httpx2.Request, redirect_uri: str) -> httpx2.Request:
    """The RFC 7591 registration request, asking for `redirect_uri` alone."""
    body = json.loads(request.content)
    body["redirect_uris"] = [redirect_uri]
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    return httpx2.Request(request.method, request.url, json=body, headers=headers)


def document_identity_allowed(body: bytes) -> bool | None:
    """For an RFC 8414 metadata document: may a metadata-document client sign in there?

    Only where the server advertises `iss` (RFC 9207), RFC 9700 4.4.2.1. None when `body` is not
    authorization server metadata (e.g. the protected resource's document).
    """
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or "authorization_endpoint" not in document:
        return None
    return document.get("authorization_response_iss_parameter_supported") is True


def require_iss(client: OAuthClientInformationFull | None, metadata: OAuthMetadata | None) -> None:
    """A metadata-document client signs in only where the server sends `iss` (RFC 9207).

    RFC 9700 4.4.2: without a redirect URI of its own per server, only `iss` tells one server's
    answer from another's; the SDK refuses an answer without it when the server advertises it,
    so a server that does not advertise it is refused here.
    """
    if (
        client is not None
        and metadata is not None
        and is_document_client(client)
        and not metadata.authorization_response_iss_parameter_supported
    ):
        raise ClientConnectError(
            f"The authorization server {metadata.issuer} does not send `iss` with its "
            "answers (RFC 9207), which a client identified by a metadata document needs "
            "against mix-up attacks (RFC 9700 4.4); sign in without --client-metadata-url "
            "to register with it instead.",
            "invalid_request",
        )
