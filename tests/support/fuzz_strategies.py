"""Hypothesis strategies for hostile OAuth requests, the fuzz target, the RFC 6749 error check."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

import httpx2
from hypothesis import strategies as st

# RFC 6749 5.2 (token), 7591 3.2.2 (registration), 7662 2.3 / 7009 2.2.1, 8707 2 (resource).
TOKEN_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_target",
    }
)
REGISTER_ERRORS = frozenset(
    {
        "invalid_redirect_uri",
        "invalid_client_metadata",
        "invalid_software_statement",
        "unapproved_software_statement",
    }
)
INTROSPECT_ERRORS = frozenset({"invalid_request", "invalid_client"})
REVOKE_ERRORS = frozenset({"invalid_request", "invalid_client", "unsupported_token_type"})
# RFC 6749 4.1.2.1 plus RFC 8707 invalid_target: what an authorization error redirect may say.
AUTHORIZE_ERRORS = frozenset(
    {
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "invalid_target",
    }
)
# RFC 6749 5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
DESCRIPTION_CHARS = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")

TOKEN_FIELDS = [
    "grant_type", "code", "redirect_uri", "code_verifier", "client_id", "client_secret",
    "refresh_token", "scope", "resource",
]  # fmt: skip
AUTHORIZE_FIELDS = [
    "response_type", "client_id", "redirect_uri", "code_challenge", "code_challenge_method",
    "state", "scope", "resource", "nonce", "prompt", "request", "request_uri",
]  # fmt: skip
FORM_FIELDS = ["csrf_token", "tx", "username", "password", "decision"]
REGISTER_FIELDS = [
    "redirect_uris", "token_endpoint_auth_method", "grant_types", "response_types",
    "client_name", "client_uri", "logo_uri", "scope", "contacts", "tos_uri", "policy_uri",
    "jwks_uri", "jwks", "software_id", "software_version", "software_statement",
    "application_type", "client_id", "client_secret",
]  # fmt: skip

HOSTILE_TEXT = [
    "", " ", "%", "%00", "\x00", "null", "None", "[]", "{}", "' OR '1'='1", "<script>",
    "\u2028", "\ud7ff", "\U0001f600", "a" * 300, "S256", "plain", "code", "token",
    "authorization_code", "refresh_token", "client_credentials", "password", "weather:read",
    "offline_access", "none", "client_secret_basic", "client_secret_post", "native", "web",
    "http://127.0.0.1:8000/mcp", "http://127.0.0.1:8000/mcp#f", "http://127.0.0.1:33333/callback",
    "https://evil.example/cb", "javascript:alert(1)", "data:text/html,x", "file:///etc/passwd",
    "http://[::1]:1/cb", "http://localhost/cb", "https://*.example/cb", "myapp://cb",
    "https://user@example.com/cb", "http://127.0.0.1:99999/cb",
]  # fmt: skip

# Text with no surrogates (they cannot be sent as UTF-8 form values).
text = st.text(st.characters(codec="utf-8"), max_size=80)
values = st.one_of(st.sampled_from(HOSTILE_TEXT), text)

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    values,
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


def fields_from(names: list[str], value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Dicts over `names` (and a few unknown keys) with values from `value`."""
    known = st.dictionaries(st.sampled_from(names), value, max_size=len(names))
    unknown = st.dictionaries(text, value, max_size=2)
    return st.builds(lambda a, b: {**b, **a}, known, unknown)


def form_pairs(names: list[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Form fields as pairs: known names, some repeated, hostile values."""
    pair = st.tuples(st.sampled_from(names) | text, values)
    return st.lists(pair, max_size=len(names) + 3)


register_bodies = st.one_of(
    fields_from(REGISTER_FIELDS, json_value),
    json_value,
    st.builds(
        lambda uris, extra: {"redirect_uris": uris, **extra},
        st.lists(values, min_size=1, max_size=3),
        fields_from(REGISTER_FIELDS, json_value),
    ),
)
raw_bodies = st.one_of(st.binary(max_size=300), text.map(str.encode))
content_types = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded; charset=latin-1",
        "",
    ]
)


def encode_json(value: Any) -> bytes:
    """JSON bytes (huge floats as written by Python: `Infinity` is still sent, a hostile case)."""
    return json.dumps(value).encode()


def check_error_object(response: httpx2.Response, allowed: frozenset[str]) -> dict[str, Any]:
    """`response` is a JSON RFC 6749 5.2 error object whose `error` is in `allowed`."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) <= {"error", "error_description", "error_uri"}, body
    assert body["error"] in allowed, body
    assert isinstance(body.get("error_description", ""), str), body
    assert response.headers["cache-control"] == "no-store"
    return body


def description_is_rfc6749_charset(body: dict[str, Any]) -> bool:
    """RFC 6749 5.2: the description uses only printable ASCII without `"` and `\\`."""
    return DESCRIPTION_CHARS.fullmatch(body.get("error_description", "")) is not None


SCALE = float(os.environ.get("FUZZ_SCALE", "1"))


def examples(count: int) -> int:
    """`count` examples, scaled by FUZZ_SCALE."""
    return max(1, int(count * SCALE))


@dataclass
class Target:
    """The running app, an HTTP client bound to it, and valid values to mix into the noise."""

    http: httpx2.AsyncClient
    client_id: str
    redirect_uri: str
    resource: str
    rs_auth: tuple[str, str] = field(repr=False)
