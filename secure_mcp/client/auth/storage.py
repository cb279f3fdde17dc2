"""Private, persistent token and client storage, keyed by authorization server and resource.

One JSON file (mode 0600, in a 0700 folder) holds three maps:
- `resources`: resource URL -> the issuer it was last authorized with, and its RFC 9728 metadata;
- `servers`: issuer -> RFC 8414 metadata and the client registration made with that issuer only;
- `tokens`: issuer -> resource -> tokens and their absolute expiry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp.shared.auth import (
    OAuthClientInformationFull,
    OAuthMetadata,
    OAuthToken,
    ProtectedResourceMetadata,
)
from pydantic import BaseModel, ValidationError

from secure_mcp.common.private_files import (
    check_private_dir,
    read_private_json,
    write_private_json,
)

STATE_FILE = "oauth-state.json"


class StorageError(Exception):
    """The state file is unreadable or malformed; `str(exc)` is one line."""


class _TokenEntry(BaseModel):
    token: OAuthToken
    expires_at: float | None = None


class _ServerEntry(BaseModel):
    metadata: OAuthMetadata | None = None
    client: OAuthClientInformationFull | None = None


class _ResourceEntry(BaseModel):
    issuer: str
    authorization_server: str
    resource_metadata: ProtectedResourceMetadata | None = None


class _StateFile(BaseModel):
    """The file's shape, checked whole when it is read: any other shape is one error line."""

    resources: dict[str, _ResourceEntry]
    servers: dict[str, _ServerEntry]
    tokens: dict[str, dict[str, _TokenEntry]]


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the top level"
    return f"{where}: {first['msg']}"


def _empty_state() -> dict[str, Any]:
    return {"resources": {}, "servers": {}, "tokens": {}}


class FileTokenStorage:
    """The SDK's TokenStorage on a private file, for one resource (the MCP server URL)."""

    def __init__(self, state_dir: Path, resource: str) -> None:
        self.path = state_dir / STATE_FILE
        self.resource = resource
        # Set by the provider: the issuer of the authorization server in use right now.
        self.current_issuer: Callable[[], str | None] = lambda: None

    def __repr__(self) -> str:
        return f"FileTokenStorage(path={str(self.path)!r}, resource={self.resource!r})"

    def _load(self) -> dict[str, Any]:
        try:
            if self.path.parent.exists():  # ours alone, or refused (UnsafePathError)
                check_private_dir(self.path.parent, create=False)
            raw = read_private_json(self.path)
        except (OSError, ValueError) as exc:  # unreadable, not ours, a link, not JSON or UTF-8
            raise StorageError(f"cannot read {self.path}: {exc}") from None
        if raw is None:
            return _empty_state()
        try:
            _StateFile.model_validate(raw)
        except ValidationError as exc:
            raise StorageError(
                f"{self.path} is malformed ({_problem(exc)}); delete it to start afresh"
            ) from None
        return dict(raw)

    def _save(self, state: dict[str, Any]) -> None:
        try:
            check_private_dir(self.path.parent)  # created 0700; ours alone, or refused
            write_private_json(self.path, state)
        except OSError as exc:
            raise StorageError(f"cannot write {self.path}: {exc}") from None

    def issuer(self) -> str | None:
        """The issuer this resource was last authorized with, if any."""
        entry = self._load()["resources"].get(self.resource)
        return entry.get("issuer") if isinstance(entry, dict) else None

    def _token_issuer(self) -> str | None:
        return self.current_issuer() or self.issuer()

    # --- the SDK's TokenStorage protocol -------------------------------------------------

    async def get_tokens(self) -> OAuthToken | None:
        """Tokens for this resource from its bound authorization server."""
        entry = self._token_entry()
        return OAuthToken.model_validate(entry["token"]) if entry else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        """Store tokens under (issuer, resource) with their absolute expiry."""
        issuer = self._token_issuer()
        if issuer is None:
            raise StorageError("tokens arrived before the authorization server was known")
        state = self._load()
        expires_at = time.time() + tokens.expires_in if tokens.expires_in is not None else None
        state["tokens"].setdefault(issuer, {})[self.resource] = {
            "token": tokens.model_dump(mode="json", exclude_none=True),
            "expires_at": expires_at,
        }
        self._save(state)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        """The registration made with this resource's authorization server (never another's)."""
        issuer = self._token_issuer()
        server = self._load()["servers"].get(issuer) if issuer else None
        client = server.get("client") if isinstance(server, dict) else None
        return OAuthClientInformationFull.model_validate(client) if client else None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        """Store a registration under the issuer it was made with."""
        issuer = client_info.issuer or self._token_issuer()
        if issuer is None:
            raise StorageError("a client registration arrived before the issuer was known")
        state = self._load()
        state["servers"].setdefault(issuer, {})["client"] = client_info.model_dump(
            mode="json", exclude_none=True
        )
        self._save(state)

    # --- beyond the protocol --------------------------------------------------------------

    def _token_entry(self) -> dict[str, Any] | None:
        issuer = self._token_issuer()
        if issuer is None:
            return None
        entry = self._load()["tokens"].get(issuer, {}).get(self.resource)
        return entry if isinstance(entry, dict) else None

    def expires_at(self) -> float | None:
        """When the stored access token expires (seconds since the epoch), if known."""
        entry = self._token_entry()
        value = entry.get("expires_at") if entry else None
        return float(value) if isinstance(value, int | float) else None

    def bind(
        self,
        auth_server_url: str,
        metadata: OAuthMetadata,
        resource_metadata: ProtectedResourceMetadata | None,
    ) -> None:
        """Record which authorization server this resource uses, with both metadata documents."""
        issuer = str(metadata.issuer)
        state = self._load()
        state["resources"][self.resource] = {
            "issuer": issuer,
            "authorization_server": auth_server_url,
            "resource_metadata": resource_metadata.model_dump(mode="json", exclude_none=True)
            if resource_metadata
            else None,
        }
        state["servers"].setdefault(issuer, {})["metadata"] = metadata.model_dump(
            mode="json", exclude_none=True
        )
        self._save(state)

    def discovered(self) -> tuple[str, OAuthMetadata, ProtectedResourceMetadata | None] | None:
        """The stored (authorization server URL, AS metadata, PRM) for this resource, if any."""
        state = self._load()
        entry = state["resources"].get(self.resource)
        if not isinstance(entry, dict):
            return None
        server = state["servers"].get(entry.get("issuer"), {})
        if not server.get("metadata"):
            return None
        prm = entry.get("resource_metadata")
        return (
            str(entry["authorization_server"]),
            OAuthMetadata.model_validate(server["metadata"]),
            ProtectedResourceMetadata.model_validate(prm) if prm else None,
        )

    def delete_tokens(self) -> bool:
        """Forget this resource's tokens (every issuer); True when there were any."""
        state = self._load()
        found = False
        for per_issuer in state["tokens"].values():
            found = per_issuer.pop(self.resource, None) is not None or found
        if found:
            self._save(state)
        return found

    def all_tokens(self) -> list[tuple[str, OAuthToken]]:
        """(issuer, tokens) for every stored token set of this resource."""
        result = []
        for issuer, per_issuer in self._load()["tokens"].items():
            entry = per_issuer.get(self.resource)
            if isinstance(entry, dict):
                result.append((issuer, OAuthToken.model_validate(entry["token"])))
        return result

    def server(self, issuer: str) -> tuple[OAuthMetadata | None, OAuthClientInformationFull | None]:
        """The stored metadata and registration for `issuer`."""
        server = self._load()["servers"].get(issuer, {})
        metadata = server.get("metadata")
        client = server.get("client")
        return (
            OAuthMetadata.model_validate(metadata) if metadata else None,
            OAuthClientInformationFull.model_validate(client) if client else None,
        )
