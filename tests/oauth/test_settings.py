"""Settings from flags and environment; the start-up banner."""

from __future__ import annotations

from pathlib import Path

import pytest

from secure_mcp.common.connection_limits import ConnectionLimits
from secure_mcp.common.ratelimit import Rate
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
        "OAUTH_HOST": "LocalHost",
        "OAUTH_PORT": "9003",
        "OAUTH_DATA_DIR": str(tmp_path),
        "OAUTH_RESOURCES": "http://127.0.0.1:8000/mcp, https://rs.example/mcp",
        "OAUTH_SCOPES": "weather:read,weather:alerts",
        "OAUTH_ACCESS_TOKEN_TTL": "60",
        "OAUTH_DEMO_USERNAME": "alice",
        "OAUTH_DEMO_PASSWORD": "twelve-chars",
        "OAUTH_SESSION_SECRET": "session-secret-value-of-32-bytes",
        "OAUTH_REGISTER_RATE": "5/10",
        "OAUTH_AUTHORIZE_RATE": "7/1.5",
        "OAUTH_LOGIN_FAILURES_PER_ACCOUNT": "2/60",
        "OAUTH_LOGIN_FAILURES_PER_SOURCE": "3/60",
        "OAUTH_MAX_PENDING": "9",
        "OAUTH_UNUSED_CLIENT_TTL": "3600",
        "OAUTH_MAX_UNUSED_CLIENTS": "11",
        "INTROSPECTION_CLIENT_ID": "rs",
        "INTROSPECTION_CLIENT_SECRET": "rs-secret",
    }
    settings = settings_from([], env)
    assert settings.issuer == "http://localhost:9003"  # follows the port when not given
    assert settings.port == 9003
    assert settings.host == "LocalHost"
    assert settings.resources == ("http://127.0.0.1:8000/mcp", "https://rs.example/mcp")
    assert settings.scopes == ("weather:read", "weather:alerts")
    assert settings.access_token_ttl == 60
    assert (settings.demo_username, settings.demo_password) == ("alice", "twelve-chars")
    assert not settings.demo_password_generated
    assert settings.session_secret == "session-secret-value-of-32-bytes"
    assert settings.introspection_credentials == ResourceCredentials("rs", "rs-secret")
    assert (settings.register_rate, settings.authorize_rate) == (Rate(5, 10), Rate(7, 1.5))
    assert settings.login_failures_per_account == Rate(2, 60)
    assert settings.login_failures_per_source == Rate(3, 60)
    assert (settings.max_pending, settings.unused_client_ttl) == (9, 3600)
    assert settings.max_unused_clients == 11
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
        pytest.param(
            [], {"OAUTH_DEMO_PASSWORD": "eleven-char"}, "at least 12 char", id="short-password"
        ),
        pytest.param(
            [], {"OAUTH_SESSION_SECRET": "s" * 31}, "at least 32 bytes", id="short-secret"
        ),
        pytest.param([], {"OAUTH_REGISTER_RATE": "20"}, "OAUTH_REGISTER_RATE", id="rate-form"),
        pytest.param([], {"OAUTH_AUTHORIZE_RATE": "0/60"}, "OAUTH_AUTHORIZE_RATE", id="rate-zero"),
        pytest.param([], {"OAUTH_LOGIN_FAILURES_PER_SOURCE": "5/nan"}, "PER_SOURCE", id="rate-nan"),
        pytest.param(
            [], {"OAUTH_LOGIN_FAILURES_PER_ACCOUNT": "x/1"}, "PER_ACCOUNT", id="rate-count"
        ),
        pytest.param([], {"OAUTH_MAX_PENDING": "0"}, "positive", id="max-pending-zero"),
        pytest.param(
            ["--host", "127.0.0.1"], {}, "bind --host localhost", id="localhost-issuer-v4-only"
        ),
    ],
)
def test_bad_settings(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_from(argv, {"OAUTH_DATA_DIR": "/tmp/unused", **env})


def test_constructor_validation(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="at least one"):
        OAuthSettings(data_dir=tmp_path, demo_password="x" * 12, resources=())
    with pytest.raises(SettingsError, match="empty"):
        OAuthSettings(data_dir=tmp_path, demo_password="")


def test_generated_passwords_are_long_enough(tmp_path: Path) -> None:
    for _ in range(20):
        settings = settings_from([], {"OAUTH_DATA_DIR": str(tmp_path)})
        assert len(settings.demo_password) >= 12


def test_default_limits(tmp_path: Path) -> None:
    settings = settings_from([], {"OAUTH_DATA_DIR": str(tmp_path)})
    assert str(settings.register_rate) == "20/60"
    assert str(settings.authorize_rate) == "60/60"
    assert str(settings.login_failures_per_account) == "5/300"
    assert str(settings.login_failures_per_source) == "20/300"
    assert (settings.max_pending, settings.max_unused_clients) == (1000, 10_000)
    assert settings.unused_client_ttl == 24 * 3600


@pytest.mark.parametrize(
    ("host", "issuer", "allowed", "refused"),
    [
        pytest.param(
            "localhost",
            "http://localhost:8003",
            {"localhost:8003", "127.0.0.1:8003", "[::1]:8003"},
            {"evil.example:8003", "localhost:8004", "localhost", "127.0.0.2:8003"},
            id="loopback",
        ),
        pytest.param(
            "127.0.0.1",
            "https://as.example",
            {"as.example", "as.example:443", "127.0.0.1:8003", "localhost:8003"},
            {"as.example:8003", "evil.example"},
            id="behind-a-proxy",
        ),
        pytest.param(
            "192.0.2.7",
            "https://as.example:8003",
            {"as.example:8003", "192.0.2.7:8003"},
            {"localhost:8003", "127.0.0.1:8003", "as.example"},
            id="one-interface",
        ),
        pytest.param(
            "::",
            "https://AS.example:8003",
            {"as.example:8003", "localhost:8003", "[::1]:8003"},
            {"[::]:8003", "evil.example:8003"},
            id="wildcard",
        ),
    ],
)
def test_allowed_hosts(
    tmp_path: Path, host: str, issuer: str, allowed: set[str], refused: set[str]
) -> None:
    settings = OAuthSettings(data_dir=tmp_path, demo_password="x" * 12, host=host, issuer=issuer)
    assert allowed <= settings.allowed_hosts
    assert not refused & settings.allowed_hosts


def test_banner_prints_generated_password_only(tmp_path: Path) -> None:
    generated = settings_from([], {"OAUTH_DATA_DIR": str(tmp_path)})
    text = "\n".join(banner(generated))
    assert "issuer:      http://localhost:8003" in text
    assert "http://localhost:8003/.well-known/oauth-authorization-server" in text
    assert "username demo" in text
    assert generated.demo_password in text
    env = {"OAUTH_DATA_DIR": str(tmp_path), "OAUTH_DEMO_PASSWORD": "pw1-long-enough"}
    given = settings_from([], env)
    assert "pw1-long-enough" not in "\n".join(banner(given))
    assert "from OAUTH_DEMO_PASSWORD" in "\n".join(banner(given))


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
    assert "INSECURE" not in "\n".join(banner(settings))


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
    text = "\n".join(banner(settings))
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


def test_connection_limits(tmp_path: Path) -> None:
    env = {"OAUTH_DATA_DIR": str(tmp_path), "OAUTH_HEADER_TIMEOUT": "3"}
    assert settings_from([], env).connection_limits == ConnectionLimits(3.0, 30.0, 512, 256)
    settings = settings_from(["--max-connections", "100", "--body-timeout", "4"], env)
    assert settings.connection_limits == ConnectionLimits(3.0, 4.0, 100, 50)  # half by default
    assert "clients:     request head within 3 s, body within 4 s; at most 100" in "\n".join(
        banner(settings)
    )
    given = {**env, "OAUTH_MAX_CONNECTIONS_PER_SOURCE": "90"}
    assert settings_from(["--max-connections", "100"], given).connection_limits == (
        ConnectionLimits(3.0, 30.0, 100, 90)
    )
    with pytest.raises(SettingsError, match="OAUTH_BODY_TIMEOUT must be a number"):
        settings_from([], {**env, "OAUTH_BODY_TIMEOUT": "later"})
    with pytest.raises(SettingsError, match="timeouts must be positive"):
        settings_from(["--header-timeout", "0"], env)


def test_server_name_and_scope_descriptions_from_the_environment(tmp_path: Path) -> None:
    env = {
        "OAUTH_DATA_DIR": str(tmp_path),
        "OAUTH_SERVER_NAME": "Acme sign-in",
        "OAUTH_SCOPE_DESCRIPTIONS": '{"weather:read": "see the weather", "x:y": "z"}',
    }
    settings = settings_from([], env)
    assert settings.server_name == "Acme sign-in"
    assert settings.scope_descriptions["weather:read"] == "see the weather"
    assert settings.scope_descriptions["x:y"] == "z"
    defaults = settings_from([], {"OAUTH_DATA_DIR": str(tmp_path)})
    assert defaults.server_name == "Secure MCP authorization server"
    assert defaults.scope_descriptions["weather:read"] == "read weather alerts and forecasts"


@pytest.mark.parametrize("value", ["not json", '["a"]', '{"weather:read": 1}', '{"a": ""}'])
def test_bad_scope_descriptions_are_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError, match="OAUTH_SCOPE_DESCRIPTIONS must be a JSON object"):
        settings_from([], {"OAUTH_DATA_DIR": str(tmp_path), "OAUTH_SCOPE_DESCRIPTIONS": value})


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("postgresql+asyncpg://u:p@db:5432/oauth", "postgresql+asyncpg://u:p@db:5432/oauth"),
        (
            "postgresql://u:p%40w@db/oauth?ssl=require",
            "postgresql+asyncpg://u:p%40w@db/oauth?ssl=require",
        ),
        ("postgres://u@db/oauth", "postgresql+asyncpg://u@db/oauth"),
        ("sqlite:////srv/oauth.sqlite3", "sqlite+aiosqlite:////srv/oauth.sqlite3"),
        ("sqlite+aiosqlite:///rel.sqlite3", "sqlite+aiosqlite:///rel.sqlite3"),
    ],
    ids=["asyncpg", "postgresql", "postgres", "sqlite", "aiosqlite"],
)
def test_database_urls_are_read_in_their_async_form(tmp_path: Path, given: str, kept: str) -> None:
    from_flag = settings_from(["--database-url", given], {"OAUTH_DATA_DIR": str(tmp_path)})
    from_env = settings_from([], {"OAUTH_DATA_DIR": str(tmp_path), "OAUTH_DATABASE_URL": given})
    assert from_flag.database_url == from_env.database_url == kept
    assert "p%40w" not in repr(from_flag)
    shown = "\n".join(banner(from_flag))
    assert "database:    " in shown
    assert ":p@" not in shown
    assert "p%40w" not in shown


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql+aiomysql://u:p@db/oauth", r"unsupported database 'mysql\+aiomysql'"),
        ("not a url", "must be an SQLAlchemy URL"),
        ("postgresql://db:port/oauth", "must be an SQLAlchemy URL"),
        ("sqlite://", "needs a file path"),
    ],
    ids=["mysql", "garbage", "bad-port", "sqlite-memory"],
)
def test_unusable_database_urls_are_refused(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as refused:
        settings_from(["--database-url", url], {"OAUTH_DATA_DIR": str(tmp_path)})
    assert ":p@" not in str(refused.value)


def test_without_a_database_url_the_banner_names_the_sqlite_file(tmp_path: Path) -> None:
    settings = settings_from([], {"OAUTH_DATA_DIR": str(tmp_path)})
    assert settings.database_url is None
    assert f"database:    {tmp_path / 'oauth.sqlite3'} (SQLite" in "\n".join(banner(settings))
