"""Private, persistent token and client storage, keyed by authorization server and resource.

One JSON file (mode 0600, in a 0700 folder) holds three maps:
- `resources`: resource URL -> the issuer it was last authorized with, and its RFC 9728 metadata;
- `servers`: issuer -> RFC 8414 metadata and the client registration made with that issuer only
  (shared by every resource that server protects: one registration per server and redirect URI);
- `tokens`: issuer -> resource -> tokens, their absolute expiry, and the client they were issued
  to (refresh and revocation go as that client, whatever registration comes later).

Several client.py processes may share the folder: every change is a read-modify-write under an
exclusive lock (`oauth-state.lock`), and a refresh holds `refresh.lock` from re-reading the
tokens to storing the new ones (the provider takes it), so no two processes spend one refresh
token (the authorization server would take that for theft and revoke the sign-in).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
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
    open_private,
    read_private_json,
    write_private_json,
)

STATE_FILE = "oauth-state.json"
WRITE_LOCK = "oauth-state.lock"
REFRESH_LOCK = "refresh.lock"
LOCK_POLL = 0.05  # seconds between tries for the refresh lock


class StorageError(Exception):
    """The state file is unreadable or malformed; `str(exc)` is one line."""


class _TokenEntry(BaseModel):
    token: OAuthToken
    expires_at: float | None = None
    client: OAuthClientInformationFull | None = None  # the client the tokens were issued to


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


def _dump(model: BaseModel) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    return data


def is_registration(client: OAuthClientInformationFull) -> bool:
    """A client made by RFC 7591 registration (not a metadata-document URL client_id)."""
    return not (client.client_id or "").startswith(("https://", "http://"))


class RefreshLock:
    """The exclusive right to refresh this state folder's tokens, across processes (flock)."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def release(self) -> None:
        """Let the next process refresh (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the flock


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class FileTokenStorage:
    """The SDK's TokenStorage on a private file, for one resource (the MCP server URL)."""

    def __init__(self, state_dir: Path, resource: str) -> None:
        self.path = state_dir / STATE_FILE
        self.resource = resource
        # Set by the provider: the issuer of the authorization server in use right now, and the
        # client it is signed in as (kept with the tokens).
        self.current_issuer: Callable[[], str | None] = lambda: None
        self.current_client: Callable[[], OAuthClientInformationFull | None] = lambda: None

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

    def _lock_file(self, name: str) -> int:
        """A descriptor on the lock file `name` in the (private) state folder."""
        try:
            check_private_dir(self.path.parent)
            return open_private(self.path.parent / name, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise StorageError(f"cannot lock {self.path.parent / name}: {exc}") from None

    @contextlib.contextmanager
    def _changing(self) -> Iterator[dict[str, Any]]:
        """The state, read and written back under the write lock (no process loses a change)."""
        fd = self._lock_file(WRITE_LOCK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held only for a read and a write: never long
            state = self._load()
            yield state
            self._save(state)
        finally:
            os.close(fd)

    async def refresh_lock(self, patience: float) -> RefreshLock | None:
        """Wait (without blocking the event loop) for the refresh lock; None after `patience` s.

        A process holds it for one refresh request at most, which has its own deadline, so
        a lock still held after `patience` belongs to a stuck process: the caller goes on.
        """
        fd = self._lock_file(REFRESH_LOCK)
        deadline = time.monotonic() + patience
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            await asyncio.sleep(LOCK_POLL)
        return RefreshLock(fd)

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
        """Store tokens under (issuer, resource) with their absolute expiry and their client."""
        issuer = self._token_issuer()
        if issuer is None:
            raise StorageError("tokens arrived before the authorization server was known")
        expires_at = time.time() + tokens.expires_in if tokens.expires_in is not None else None
        entry: dict[str, Any] = {"token": _dump(tokens), "expires_at": expires_at}
        client = self.current_client()
        if client is not None:
            entry["client"] = _dump(client)
        with self._changing() as state:
            state["tokens"].setdefault(issuer, {})[self.resource] = entry

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        """The client this resource's tokens were issued to, else the registration made with
        its authorization server (never another server's)."""
        entry = self._token_entry()
        if entry is not None and entry.get("client"):
            return OAuthClientInformationFull.model_validate(entry["client"])
        issuer = self._token_issuer()
        return self.registration(issuer) if issuer else None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        """Store a registration under the issuer it was made with.

        A metadata-document identity is not a registration: it is kept with its tokens only.
        """
        issuer = client_info.issuer or self._token_issuer()
        if issuer is None:
            raise StorageError("a client registration arrived before the issuer was known")
        if not is_registration(client_info):
            return
        with self._changing() as state:
            state["servers"].setdefault(issuer, {})["client"] = _dump(client_info)

    def registration(self, issuer: str) -> OAuthClientInformationFull | None:
        """The registration this client made with `issuer` (for any of its resources)."""
        server = self._load()["servers"].get(issuer)
        client = server.get("client") if isinstance(server, dict) else None
        return OAuthClientInformationFull.model_validate(client) if client else None

    def forget_registration(self, issuer: str, client_id: str) -> None:
        """The server no longer knows `client_id`: drop it, and every token issued to it."""
        with self._changing() as state:
            server = state["servers"].get(issuer, {})
            if (server.get("client") or {}).get("client_id") == client_id:
                del server["client"]
            per_resource = state["tokens"].get(issuer, {})
            for resource, entry in list(per_resource.items()):
                if (entry.get("client") or {}).get("client_id") in (client_id, None):
                    del per_resource[resource]

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
        with self._changing() as state:
            state["resources"][self.resource] = {
                "issuer": issuer,
                "authorization_server": auth_server_url,
                "resource_metadata": _dump(resource_metadata) if resource_metadata else None,
            }
            state["servers"].setdefault(issuer, {})["metadata"] = _dump(metadata)

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
        if not any(self.resource in per_issuer for per_issuer in self._load()["tokens"].values()):
            return False
        with self._changing() as state:
            for per_issuer in state["tokens"].values():
                per_issuer.pop(self.resource, None)
        return True

    def all_tokens(self) -> list[tuple[str, OAuthToken, OAuthClientInformationFull | None]]:
        """(issuer, tokens, their client if recorded) for every token set of this resource."""
        result = []
        for issuer, per_issuer in self._load()["tokens"].items():
            entry = per_issuer.get(self.resource)
            if isinstance(entry, dict):
                client = entry.get("client")
                result.append(
                    (
                        issuer,
                        OAuthToken.model_validate(entry["token"]),
                        OAuthClientInformationFull.model_validate(client) if client else None,
                    )
                )
        return result

    def server(self, issuer: str) -> tuple[OAuthMetadata | None, OAuthClientInformationFull | None]:
        """The stored metadata and registration for `issuer`."""
        metadata = self._load()["servers"].get(issuer, {}).get("metadata")
        return (
            OAuthMetadata.model_validate(metadata) if metadata else None,
            self.registration(issuer),
        )
