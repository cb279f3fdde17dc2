"""The adapter's settings for the suite's clients without a browser (issue 14).

Each scenario's context becomes exactly what a user would configure: `--client-credentials`
with the secret or a private key file, `--wif-token-file` (SEP-1933) or
`--idp-token-endpoint`/`--id-token-file` (SEP-990), always bound to the issuer the scenario's
protected-resource metadata names. Key and token files are written 0600 in the run's state
folder, as the client requires.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from secure_mcp.client.settings import ClientSettings
from secure_mcp.common.private_files import write_private_text

CLIENT_CREDENTIALS = ("auth/client-credentials-basic", "auth/client-credentials-jwt")
WORKLOAD_IDENTITY = "auth/wif-jwt-bearer"
ENTERPRISE = "auth/enterprise-managed-authorization"
SCENARIOS = frozenset({*CLIENT_CREDENTIALS, WORKLOAD_IDENTITY, ENTERPRISE})


def _file(state_dir: Path, name: str, text: str) -> Path:
    path = state_dir / "credentials" / name
    write_private_text(path, text)
    return path


def machine_settings(
    scenario: str, context: dict[str, Any], base: ClientSettings, issuer: str | None
) -> ClientSettings:
    """`base` with the flags this scenario's user would pass (ValueError for another one)."""
    settings = dataclasses.replace(
        base, client_metadata_url=None, client_issuer=issuer, client_id=context.get("client_id")
    )
    folder = base.state_dir
    if scenario == "auth/client-credentials-basic":
        return dataclasses.replace(
            settings, client_credentials=True, client_secret=context["client_secret"]
        )
    if scenario == "auth/client-credentials-jwt":
        key = _file(folder, "client-key.pem", context["private_key_pem"])
        return dataclasses.replace(
            settings, client_credentials=True, client_secret=None, private_key_file=key
        )
    if scenario == WORKLOAD_IDENTITY:  # the suite's other JWTs are for its broken clients
        token = _file(folder, "workload.jwt", context["valid_jwt"])
        return dataclasses.replace(settings, client_secret=None, wif_token_file=token)
    if scenario == ENTERPRISE:
        id_token = _file(folder, "id-token.jwt", context["idp_id_token"])
        return dataclasses.replace(
            settings,
            client_secret=context["client_secret"],
            idp_token_endpoint=context["idp_token_endpoint"],
            idp_client_id=context.get("idp_client_id"),
            id_token_file=id_token,
        )
    raise ValueError(f"not a machine-client scenario: {scenario}")
