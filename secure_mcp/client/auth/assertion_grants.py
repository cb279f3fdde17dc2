"""The RFC 7523 2.1 JWT bearer grant without a browser: workload identity and enterprise IdPs.

- Workload identity federation (MCP extension `io.modelcontextprotocol/auth/wif`, SEP-1933):
  the platform (CI, Kubernetes, a cloud) gives the workload a signed JWT in a file; the client
  sends it as the `assertion` of the jwt-bearer grant, as a public client. The file is read again
  for every token request, so a platform that rotates it is followed.
- Enterprise-managed authorization (MCP extension
  `io.modelcontextprotocol/enterprise-managed-authorization`, SEP-990): the user's ID token
  from the enterprise identity provider is exchanged there (RFC 8693) for an Identity Assertion
  JWT Authorization Grant (ID-JAG) for our authorization server and resource, which the client
  then presents with the jwt-bearer grant, authenticated with its own client secret (Basic).

In both, a refused token request is final: the client stops instead of retrying or falling
back to another grant (SEP-1933).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
from mcp.shared.auth import OAuthClientInformationFull

from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.auth.machine import MachineOAuthProvider, SigningKey, machine_client
from secure_mcp.client.auth.provider import ProviderParts
from secure_mcp.client.settings import ClientSettings
from secure_mcp.common.private_files import read_owner_only
from secure_mcp.common.uris import insecure_http

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # RFC 7523 2.1
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - RFC 8693 2.1
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105 - RFC 8693 3
ID_JAG_TYPE = "urn:ietf:params:oauth:token-type:id-jag"  # SEP-990
MAX_TOKEN_FILE_BYTES = 16 * 1024

PlainClient = Callable[[], httpx2.AsyncClient]


def read_token_file(path: Path, what: str) -> str:
    """A JWT kept in a file only this user can read; ClientConnectError with one line if not."""
    try:
        raw = read_owner_only(path, MAX_TOKEN_FILE_BYTES, what)
    except OSError as exc:
        raise ClientConnectError(f"Cannot read the {what}: {exc}", "invalid_grant") from None
    token = raw.decode("ascii", "replace").strip()
    if len(raw) > MAX_TOKEN_FILE_BYTES or token.count(".") != 2 or any(c.isspace() for c in token):
        raise ClientConnectError(f"The {what} in {path} is not a JWT.", "invalid_grant")
    return token


class WorkloadIdentityProvider(MachineOAuthProvider):
    """jwt-bearer with the workload's identity token (SEP-1933): a public client, no secret."""

    grant_type = JWT_BEARER

    def _identity(
        self, settings: ClientSettings, key: SigningKey | None
    ) -> OAuthClientInformationFull:
        return machine_client(settings, None, grant=JWT_BEARER, method="none")

    async def _grant_form(self, data: dict[str, str]) -> None:
        assert self._settings.wif_token_file is not None  # chosen only with the file
        data["assertion"] = read_token_file(self._settings.wif_token_file, "workload token")

    async def _authenticate(self, data: dict[str, str], headers: dict[str, str]) -> None:
        """A public client: it names itself (RFC 6749 3.2.1), the assertion is the proof."""
        data["client_id"] = self._settings.client_id or ""


class EnterpriseProvider(MachineOAuthProvider):
    """SEP-990: ID token -> ID-JAG at the enterprise IdP (RFC 8693), then jwt-bearer here."""

    grant_type = JWT_BEARER

    def __init__(self, parts: ProviderParts, plain_client: PlainClient) -> None:
        super().__init__(parts)
        self._plain_client = plain_client

    def _identity(
        self, settings: ClientSettings, key: SigningKey | None
    ) -> OAuthClientInformationFull:
        return machine_client(settings, None, grant=JWT_BEARER)  # client_secret_basic

    async def _grant_form(self, data: dict[str, str]) -> None:
        data["assertion"] = await self._id_jag()

    async def _id_jag(self) -> str:
        """The RFC 8693 token exchange at the IdP: an ID-JAG for our issuer and resource."""
        settings = self._settings
        endpoint = settings.idp_token_endpoint or ""
        assert settings.id_token_file is not None  # chosen only with the file
        if urlsplit(endpoint).scheme not in {"http", "https"} or insecure_http(endpoint):
            raise ClientConnectError(
                f"The identity provider's token endpoint {endpoint} must be https.",
                "invalid_request",
            )
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "requested_token_type": ID_JAG_TYPE,
            "subject_token": read_token_file(settings.id_token_file, "ID token"),
            "subject_token_type": ID_TOKEN_TYPE,
            "audience": settings.client_issuer or "",  # our authorization server (SEP-990)
            "resource": self.context.get_resource_url(),  # the MCP server (RFC 8707)
        }
        if settings.idp_client_id:
            form["client_id"] = settings.idp_client_id
        self._trace(f"token exchange: asking {endpoint} for an ID-JAG")
        async with self._plain_client() as http:
            response = await http.post(endpoint, data=form)
        try:
            body = response.json() if response.status_code == 200 else {}
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        token = body.get("access_token")
        if body.get("issued_token_type") != ID_JAG_TYPE or not isinstance(token, str) or not token:
            raise ClientConnectError(
                f"The identity provider {endpoint} did not issue an ID-JAG "
                f"(HTTP {response.status_code}).",
                "invalid_grant",
            )
        return token
