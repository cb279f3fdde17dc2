"""Settings from flags and environment; the start-up banner."""

from __future__ import annotations

from pathlib import Path

import pytest

from secure_mcp.common.resource_credentials import ResourceCredentials
from secure_mcp.oauth.banner import banner
from secure_mcp.oauth.settings import OAuthSettings, SettingsError, settings_from


def test_defaults(tmp_path: Path) -> None:
    settings = settings_from([], {"XDG_DATA_HOME": str(tmp_path)})
    assert settings.host == "localhost"
    assert settings.port == 8003
    assert settings.issuer == "http://localhost:8003"
    assert settings.metadata_url == "http://localhost:8003/.well-known/oauth-authorization-server"
    assert settings.data_dir == tmp_path / "secure-mcp/oauth"
    assert settings.resources == ("http://127.0.0.1:8000/mcp",)
    assert settings.scopes == ("weather:read",)
    assert settings.access_token_ttl == 3600
    assert settings.demo_username == "demo"
    assert settings.demo_password_generated
    assert len(settings.demo_password) >= 16
    assert settings.introspection_credentials is None
    assert settings.demo_password not in repr(settings)


def test_environment(tmp_path: Path) -> None:
    env = {
        "OAUTH_HOST": "127.0.0.1",
        "OAUTH_PORT": "9003",
        "OAUTH_DATA_DIR": str(tmp_path),
        "OAUTH_RESOURCES": "http://127.0.0.1:8000/mcp, https://rs.example/mcp",
        "OAUTH_SCOPES": "weather:read,weather:alerts",
        "OAUTH_ACCESS_TOKEN_TTL": "60",
        "OAUTH_DEMO_USERNAME": "alice",
        "OAUTH_DEMO_PASSWORD": "pw",
        "OAUTH_SESSION_SECRET": "session-secret-value",
        "INTROSPECTION_CLIENT_ID": "rs",
        "INTROSPECTION_CLIENT_SECRET": "rs-secret",
    }
    settings = settings_from([], env)
    assert settings.issuer == "http://localhost:9003"  # follows the port when not given
    assert settings.port == 9003
    assert settings.host == "127.0.0.1"
    assert settings.resources == ("http://127.0.0.1:8000/mcp", "https://rs.example/mcp")
    assert settings.scopes == ("weather:read", "weather:alerts")
    assert settings.access_token_ttl == 60
    assert (settings.demo_username, settings.demo_password) == ("alice", "pw")
    assert not settings.demo_password_generated
    assert settings.session_secret == "session-secret-value"
    assert settings.introspection_credentials == ResourceCredentials("rs", "rs-secret")
    assert "session-secret-value" not in repr(settings)
    assert "rs-secret" not in repr(settings)


def test_flags_win(tmp_path: Path) -> None:
    argv = [
        "--host", "127.0.0.2", "--port", "1234", "--issuer", "https://as.example/tenant",
        "--data-dir", str(tmp_path), "--resource", "https://a.example/mcp",
        "--resource", "https://b.example/mcp", "--scopes", "a b", "--access-token-ttl", "5",
    ]  # fmt: skip
    env = {"OAUTH_ISSUER": "http://other", "OAUTH_PORT": "1", "OAUTH_RESOURCES": "http://x/y"}
    settings = settings_from(argv, env)
    assert settings.issuer == "https://as.example/tenant"
    assert settings.issuer_path == "/tenant"
    assert settings.metadata_url == (
        "https://as.example/.well-known/oauth-authorization-server/tenant"
    )
    assert settings.port == 1234
    assert settings.resources == ("https://a.example/mcp", "https://b.example/mcp")
    assert settings.scopes == ("a", "b")
    assert settings.access_token_ttl == 5
    assert settings.data_dir == tmp_path


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        pytest.param(["--issuer", "http://x/"], {}, "must not end", id="issuer-slash"),
        pytest.param(["--issuer", "ftp://x"], {}, "http", id="issuer-scheme"),
        pytest.param(["--issuer", "http://x?a=1"], {}, "query", id="issuer-query"),
        pytest.param(["--resource", "mcp"], {}, "absolute", id="resource-relative"),
        pytest.param(["--resource", "http://x/a#b"], {}, "fragment", id="resource-fragment"),
        pytest.param(
            ["--resource", "http://x/a", "--resource", "http://x/a"], {}, "twice", id="dup"
        ),
        pytest.param(["--scopes", 'bad"scope'], {}, "scope", id="scope-chars"),
        pytest.param(["--access-token-ttl", "0"], {}, "positive", id="ttl-zero"),
        pytest.param([], {"OAUTH_PORT": "eighty"}, "OAUTH_PORT", id="port-not-int"),
        pytest.param([], {"INTROSPECTION_CLIENT_ID": "x"}, "both", id="half-credentials"),
    ],
)
def test_bad_settings(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_from(argv, {"OAUTH_DATA_DIR": "/tmp/unused", **env})


def test_constructor_validation(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="at least one"):
        OAuthSettings(data_dir=tmp_path, demo_password="x", resources=())
    with pytest.raises(SettingsError, match="empty"):
        OAuthSettings(data_dir=tmp_path, demo_password="")


def test_banner_prints_generated_password_only(tmp_path: Path) -> None:
    generated = settings_from([], {"OAUTH_DATA_DIR": str(tmp_path)})
    text = banner(generated)
    assert "issuer:      http://localhost:8003" in text
    assert "http://localhost:8003/.well-known/oauth-authorization-server" in text
    assert "username demo" in text
    assert generated.demo_password in text
    given = settings_from([], {"OAUTH_DATA_DIR": str(tmp_path), "OAUTH_DEMO_PASSWORD": "pw1"})
    assert "pw1" not in banner(given)
    assert "from OAUTH_DEMO_PASSWORD" in banner(given)


INSECURE = [
    pytest.param(["--issuer", "http://as.example"], "--issuer http://as.example", id="issuer"),
    pytest.param(
        ["--issuer", "http://10.0.0.5:8003/t"], "--issuer http://10.0.0.5:8003/t", id="issuer-ip"
    ),
    pytest.param(
        ["--resource", "http://mcp.example/mcp"], "resource http://mcp.example/mcp", id="resource"
    ),
]


@pytest.mark.parametrize(("argv", "named"), INSECURE)
def test_plain_http_off_loopback_is_refused(tmp_path: Path, argv: list[str], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from(argv, {"OAUTH_DATA_DIR": str(tmp_path)})
    message = str(caught.value)
    assert "\n" not in message
    assert named in message
    assert "must be https" in message
    assert "--allow-insecure-http" in message  # the flag that would allow it, named


@pytest.mark.parametrize(
    "issuer",
    ["http://localhost:8003", "http://127.0.0.1:8003", "http://127.0.0.2", "http://[::1]:8003"],
)
def test_plain_http_on_loopback_is_fine(tmp_path: Path, issuer: str) -> None:
    settings = settings_from(["--issuer", issuer], {"OAUTH_DATA_DIR": str(tmp_path)})
    assert settings.issuer == issuer
    assert not settings.allow_insecure_http
    assert "INSECURE" not in banner(settings)


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        pytest.param(["--allow-insecure-http"], {}, id="flag"),
        pytest.param([], {"OAUTH_ALLOW_INSECURE_HTTP": "1"}, id="env"),
    ],
)
def test_development_flag_allows_plain_http_with_a_loud_banner(
    tmp_path: Path, argv: list[str], env: dict[str, str]
) -> None:
    argv = [*argv, "--issuer", "http://as.example", "--resource", "http://mcp.example/mcp"]
    settings = settings_from(argv, {"OAUTH_DATA_DIR": str(tmp_path), **env})
    assert settings.allow_insecure_http
    text = banner(settings)
    assert "!" * 78 in text
    assert "--allow-insecure-http / OAUTH_ALLOW_INSECURE_HTTP" in text
    assert "plain http" in text


def test_resources_are_kept_in_canonical_form(tmp_path: Path) -> None:
    argv = ["--resource", "HTTPS://MCP.Example:443/Mcp", "--resource", "http://LOCALHOST:8000/mcp"]
    settings = settings_from(argv, {"OAUTH_DATA_DIR": str(tmp_path)})
    assert settings.resources == ("https://mcp.example/Mcp", "http://localhost:8000/mcp")
    with pytest.raises(SettingsError, match="twice"):
        settings_from(
            ["--resource", "https://a.example/mcp", "--resource", "https://A.example:443/mcp"],
            {"OAUTH_DATA_DIR": str(tmp_path)},
        )
    with pytest.raises(SettingsError, match="absolute"):
        settings_from(["--resource", "https://a.example:x/mcp"], {"OAUTH_DATA_DIR": "/tmp/x"})
