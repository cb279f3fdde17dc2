"""Which provider a client without a browser uses: client credentials, workload or enterprise."""

from __future__ import annotations

from secure_mcp.client.auth.assertion_grants import (
    EnterpriseProvider,
    PlainClient,
    WorkloadIdentityProvider,
)
from secure_mcp.client.auth.machine import MachineOAuthProvider, load_signing_key
from secure_mcp.client.auth.provider import ProviderParts


def machine_provider(parts: ProviderParts, plain_client: PlainClient) -> MachineOAuthProvider:
    """The provider for the mode the settings choose (cli.machine_problem checked them)."""
    settings = parts.settings
    if settings.wif_token_file:
        return WorkloadIdentityProvider(parts)
    if settings.idp_token_endpoint:
        return EnterpriseProvider(parts, plain_client)
    key = load_signing_key(settings.private_key_file) if settings.private_key_file else None
    return MachineOAuthProvider(parts, key)
