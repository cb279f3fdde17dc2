"""The client's one settings object, built at the entry point from flags and environment."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_SERVER_URL = "http://127.0.0.1:8000/mcp"
DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_CLIENT_NAME = "Secure MCP Weather CLI"
ISSUER_REQUIRED = (
    "--client-id needs --client-issuer (MCP_CLIENT_ISSUER): the authorization server it is "
    "registered with, the only one its credentials may be sent to."
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_LOOPBACK_HOSTS = ("localhost", "127.", "[::1]")


def server_url_problem(url: str, source: str = "--server") -> str | None:
    """Why `url` cannot be an MCP server URL (one line, with the fix), or None when it can."""
    if not _SCHEME.match(url):
        host = url.split("/", 1)[0].lower()
        scheme = "http" if host.startswith(_LOOPBACK_HOSTS) else "https"
        return f"{source} {url} has no scheme; did you mean {source} {scheme}://{url} ?"
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return f"{source} {url} is not a valid URL (check the port)"
    if parts.scheme.lower() not in ("http", "https"):
        return f"{source} {url} must be an http:// or https:// URL"
    if not parts.hostname:
        return f"{source} {url} has no host"
    return None


@dataclass(frozen=True)
class ClientSettings:
    """Everything client.py needs; secrets never appear in the repr."""

    state_dir: Path
    server_url: str = DEFAULT_SERVER_URL
    paste: bool = False  # accept a pasted code / redirect URL instead of a loopback listener
    open_browser: bool = True  # False with --no-browser: print the URL, still listen
    verbose: bool = False  # print each OAuth step (never a secret)
    client_name: str = DEFAULT_CLIENT_NAME
    client_metadata_url: str | None = None  # CIMD https URL (--client-metadata-url)
    client_id: str | None = None  # pre-registered client: used before CIMD and registration
    client_secret: str | None = field(default=None, repr=False)  # its secret, if confidential
    client_issuer: str | None = None  # the only AS the pre-registered client may be used with
    scope: str | None = None  # asked for at sign-in instead of the server's hint (--scope)
    client_credentials: bool = False  # no browser: the client_credentials grant (OAuth 2.1 4.2)
    private_key_file: Path | None = None  # private_key_jwt key (PEM) instead of the secret
    wif_token_file: Path | None = None  # workload identity JWT: the jwt-bearer grant (SEP-1933)
    idp_token_endpoint: str | None = None  # enterprise IdP token endpoint (SEP-990)
    idp_client_id: str | None = None  # the client's id at that IdP
    id_token_file: Path | None = None  # the user's ID token from that IdP

    @property
    def machine(self) -> bool:
        """Tokens without a browser: client credentials, workload identity or enterprise IdP."""
        return bool(self.client_credentials or self.wif_token_file or self.idp_token_endpoint)

    anthropic_api_key: str | None = field(default=None, repr=False)
    anthropic_model: str = DEFAULT_MODEL
    anthropic_base_url: str | None = None
    max_tool_rounds: int = 10
    anthropic_max_tokens: int = 4096  # per Claude turn
    max_step_up: int = 2  # re-authorizations on 403 insufficient_scope per request
    confirm_tools: bool = False  # ask before each tool call Claude makes (--confirm-tools)
    color: bool = True  # style the client's own lines on a terminal (off with NO_COLOR)
    # Bounds on what a server can make the client do, hold or wait for (README, "Security"):
    max_sign_ins: int = 3  # browser sign-ins per session; then the client stops
    max_oauth_response_bytes: int = 256 * 1024  # metadata, registration, token answers
    max_mcp_response_bytes: int = 16 * 1024 * 1024  # one MCP answer (a tool list page, a result)
    max_tool_pages: int = 20  # tools/list pages read at most
    max_tools: int = 200  # tools given to Claude at most
    max_description_chars: int = 8 * 1024  # of one tool's description
    max_result_chars: int = 100_000  # of one tool result's text (for Claude and the display)
    oauth_deadline: float = 30.0  # seconds for one authorization-server request, body included
    mcp_deadline: float = 120.0  # seconds for one MCP request, answer included
    # Idle connections are dropped after this many seconds, before a server closes them (uvicorn
    # and Node: 5 s): reusing one the server is closing loses the request (a ReadError).
    http_keepalive: float = 2.0
