"""RFC 8707 resource indicators: the one resource a request names, in canonical form."""

from __future__ import annotations

from pathlib import Path

import pytest

from secure_mcp.oauth import rfc8707
from secure_mcp.oauth.errors import InvalidTarget
from secure_mcp.oauth.settings import OAuthSettings, settings_from

ONE = "http://127.0.0.1:8000/mcp"
TWO = "http://127.0.0.1:9000/mcp"


def _settings(tmp_path: Path, *resources: str) -> OAuthSettings:
    argv = ["--data-dir", str(tmp_path)]
    for resource in resources:
        argv += ["--resource", resource]
    return settings_from(argv, {})


def test_an_omitted_resource_is_the_only_one(tmp_path: Path) -> None:
    assert rfc8707.requested_resource(_settings(tmp_path, ONE), None) == ONE
    with pytest.raises(InvalidTarget, match="resource is required"):
        rfc8707.requested_resource(_settings(tmp_path, ONE, TWO), None)


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        pytest.param("/mcp", "absolute URI", id="relative"),
        pytest.param(ONE + "#x", "absolute URI", id="fragment"),
        pytest.param("http://127.0.0.1:99999/mcp", "malformed port", id="port"),
        pytest.param("http://127.0.0.1:8000/other", "unknown resource", id="unknown"),
    ],
)
def test_a_bad_resource_is_invalid_target(tmp_path: Path, sent: str, message: str) -> None:
    with pytest.raises(InvalidTarget, match=message):
        rfc8707.requested_resource(_settings(tmp_path, ONE), sent)


def test_a_resource_is_compared_in_canonical_form(tmp_path: Path) -> None:
    assert rfc8707.requested_resource(_settings(tmp_path, ONE), "HTTP://127.0.0.1:8000/mcp") == ONE
    rfc8707.check_same_resource(None, ONE)
    rfc8707.check_same_resource("http://127.0.0.1:8000/mcp", ONE)
    with pytest.raises(InvalidTarget, match="differs from the one authorized"):
        rfc8707.check_same_resource(TWO, ONE)


def test_several_resources_are_refused_with_invalid_target() -> None:
    error = rfc8707.several_resources()
    assert (error.error, error.status_code) == ("invalid_target", 400)
