"""Which provider a client without a browser uses: client credentials, workload or enterprise."""

from __future__ import annotations

from collections.abc import Callable

from secure_mcp.client.auth.assertion_grants import (
    EnterpriseProvider,
    PlainClient,
    WorkloadIdentityProvider,
)
from secure_mcp.client.auth.interaction import Authorizer
from secure_mcp.client.auth.machine import MachineOAuthProvider, load_signing_key
from secure_mcp.client.auth.storage import FileTokenStorage
from secure_mcp.client.settings import ClientSettings


def machine_provider(
    settings: ClientSettings,
    storage: FileTokenStorage,
    authorizer: Authorizer,
    write: Callable[[str], None],
    plain_client: PlainClient,
) -> MachineOAuthProvider:
    """The provider for the mode the settings choose (cli.machine_problem checked them)."""
    if settings.wif_token_file:
        return WorkloadIdentityProvider(settings, storage, authorizer, write)
    if settings.idp_token_endpoint:
        return EnterpriseProvider(settings, storage, authorizer, write, plain_client)
    key = load_signing_key(settings.private_key_file) if settings.private_key_file else None
    return MachineOAuthProvider(settings, storage, authorizer, write, key)
