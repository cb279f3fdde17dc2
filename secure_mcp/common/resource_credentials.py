"""Introspection credentials of resource servers, shared through the data folder (RFC 7662 2.1).

oauth.py writes `resource-servers.json` (mode 0600) in its data folder at first start, one entry
per configured resource; weather.py reads its own entry from the same folder. Environment
variables `INTROSPECTION_CLIENT_ID` / `INTROSPECTION_CLIENT_SECRET` take precedence in both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from secure_mcp.common.private_files import read_json, write_private_json

CREDENTIALS_FILE = "resource-servers.json"
ENV_CLIENT_ID = "INTROSPECTION_CLIENT_ID"
ENV_CLIENT_SECRET = "INTROSPECTION_CLIENT_SECRET"  # noqa: S105 - a variable name, not a secret


class CredentialsError(Exception):
    """The credentials file is unreadable or malformed."""


@dataclass(frozen=True)
class ResourceCredentials:
    """A resource server's client_id and secret for calling the introspection endpoint."""

    client_id: str
    client_secret: str = field(repr=False)

    def __repr__(self) -> str:
        return f"ResourceCredentials(client_id={self.client_id!r}, client_secret='[secure]')"


def credentials_path(data_dir: Path) -> Path:
    """The credentials file inside an authorization server data folder."""
    return data_dir / CREDENTIALS_FILE


def credentials_from_env(env: Mapping[str, str]) -> ResourceCredentials | None:
    """Credentials from the environment, or None when neither variable is set.

    Raises CredentialsError when only one of the two is set.
    """
    client_id = env.get(ENV_CLIENT_ID, "")
    secret = env.get(ENV_CLIENT_SECRET, "")
    if not client_id and not secret:
        return None
    if not client_id or not secret:
        raise CredentialsError(f"set both {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET}, or neither")
    return ResourceCredentials(client_id, secret)


def load_all(data_dir: Path) -> dict[str, ResourceCredentials]:
    """Every resource's credentials in the data folder's file, keyed by resource URL."""
    path = credentials_path(data_dir)
    try:
        raw = read_json(path)
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"cannot read {path}: {exc}") from exc
    if raw is None:
        return {}
    resources = raw.get("resources") if isinstance(raw, dict) else None
    if not isinstance(resources, dict):
        raise CredentialsError(f"{path} has no 'resources' object")
    result: dict[str, ResourceCredentials] = {}
    for resource, entry in resources.items():
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("client_id"), str)
            and isinstance(entry.get("client_secret"), str)
        ):
            raise CredentialsError(f"{path}: entry for {resource!r} is malformed")
        result[resource] = ResourceCredentials(entry["client_id"], entry["client_secret"])
    return result


def save_all(data_dir: Path, credentials: Mapping[str, ResourceCredentials]) -> None:
    """Write every resource's credentials to the data folder's file (mode 0600, atomic)."""
    payload = {
        "resources": {
            resource: {"client_id": cred.client_id, "client_secret": cred.client_secret}
            for resource, cred in credentials.items()
        }
    }
    write_private_json(credentials_path(data_dir), payload)
