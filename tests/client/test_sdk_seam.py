"""The SDK seam: the private parts of mcp's `OAuthClientProvider` this client relies on.

`secure_mcp/client/auth/provider.py` overrides private methods of the SDK's provider and reads
and writes fields of its `OAuthContext`. An mcp release may change them without notice. These
tests name the piece that moved, so an upgrade of `mcp` fails here, in one clear line, and not
somewhere in a sign-in. How to upgrade: see CLAUDE.md, "Upgrading the mcp SDK".
"""

from __future__ import annotations

import dataclasses
import inspect
from importlib.metadata import version

import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.oauth2 import OAuthContext

from secure_mcp.client.auth.provider import SecureOAuthProvider

TESTED_MINOR = "2.3"  # pyproject pins mcp to this minor version

# The private methods provider.py overrides: parameters and whether they are coroutines
# ("async"), async generators ("agen") or plain functions ("def").
OVERRIDDEN = {
    "_initialize": ("async", ["self"]),
    "_perform_authorization": ("async", ["self"]),
    "_handle_token_response": ("async", ["self", "response"]),
    "_handle_refresh_response": ("async", ["self", "response"]),
    "_auth_flow": ("agen", ["self", "request"]),
}
# OAuthContext fields read or set (the provider's view of discovery, registration, tokens).
CONTEXT_FIELDS = [
    "server_url",
    "client_metadata",
    "client_metadata_url",
    "protected_resource_metadata",
    "oauth_metadata",
    "auth_server_url",
    "client_info",
    "current_tokens",
    "token_expiry_time",
]
CONTEXT_METHODS = {
    "clear_tokens": ["self"],
    "is_token_valid": ["self"],
    "can_refresh_token": ["self"],
}
CONSTRUCTOR = [
    "self",
    "server_url",
    "client_metadata",
    "storage",
    "redirect_handler",
    "callback_handler",
    "client_metadata_url",
    "validate_resource_url",
]


def kind(function: object) -> str:
    """async, agen or def."""
    if inspect.isasyncgenfunction(function):
        return "agen"
    return "async" if inspect.iscoroutinefunction(function) else "def"


def moved(what: str, expected: object, found: object) -> str:
    return (
        f"mcp {version('mcp')} changed {what}: provider.py relies on {expected}, the SDK now has "
        f"{found}. Read the SDK's change, adapt provider.py, then this test (CLAUDE.md, "
        "'Upgrading the mcp SDK')."
    )


def test_the_installed_mcp_is_the_minor_version_tested() -> None:
    installed = version("mcp")
    assert installed.startswith(TESTED_MINOR + "."), (
        f"mcp {installed} is installed, the client's SDK seam was checked against "
        f"{TESTED_MINOR}.x: run this file, adapt provider.py, then move the pin in pyproject.toml"
    )


@pytest.mark.parametrize("name", sorted(OVERRIDDEN))
def test_the_private_methods_we_override_are_unchanged(name: str) -> None:
    expected_kind, expected_params = OVERRIDDEN[name]
    method = getattr(OAuthClientProvider, name, None)
    assert method is not None, moved(f"OAuthClientProvider.{name}", "it", "no such method")
    params = list(inspect.signature(method).parameters)
    assert params == expected_params, moved(f"OAuthClientProvider.{name}", expected_params, params)
    assert kind(method) == expected_kind, moved(
        f"OAuthClientProvider.{name}", expected_kind, kind(method)
    )
    ours = vars(SecureOAuthProvider)[name]
    assert kind(ours) == expected_kind  # our override keeps the SDK's shape
    assert list(inspect.signature(ours).parameters) == expected_params


def test_every_override_of_a_private_method_is_listed_here() -> None:
    """A new override of an SDK private must be added to this contract."""
    private = {
        name
        for name, value in vars(SecureOAuthProvider).items()
        if name.startswith("_") and not name.startswith("__") and callable(value)
    }
    assert private & set(dir(OAuthClientProvider)) == set(OVERRIDDEN)


def test_the_constructor_takes_what_we_pass() -> None:
    params = list(inspect.signature(OAuthClientProvider.__init__).parameters)
    assert params == CONSTRUCTOR, moved("OAuthClientProvider.__init__", CONSTRUCTOR, params)


def test_the_context_fields_we_use_are_there() -> None:
    fields = {field.name for field in dataclasses.fields(OAuthContext)}
    missing = [name for name in CONTEXT_FIELDS if name not in fields]
    assert not missing, moved("OAuthContext", CONTEXT_FIELDS, sorted(fields))
    for name, expected in CONTEXT_METHODS.items():
        method = getattr(OAuthContext, name, None)
        found = None if method is None else list(inspect.signature(method).parameters)
        assert found == expected, moved(f"OAuthContext.{name}", expected, found)


def test_a_changed_method_is_reported_in_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The contract can fail: an SDK whose method takes other parameters is named."""

    async def changed(self: object, response: object, extra: object) -> None:
        return None

    monkeypatch.setattr(OAuthClientProvider, "_handle_token_response", changed)
    with pytest.raises(AssertionError, match=r"changed OAuthClientProvider\._handle_token_"):
        test_the_private_methods_we_override_are_unchanged("_handle_token_response")
    monkeypatch.delattr(OAuthClientProvider, "_handle_token_response")
    with pytest.raises(AssertionError, match="no such method"):
        test_the_private_methods_we_override_are_unchanged("_handle_token_response")
