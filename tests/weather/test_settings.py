"""Settings from flags and environment, and the start-up credential rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from secure_mcp.common.connection_limits import ConnectionLimits
from secure_mcp.common.resource_credentials import ResourceCredentials, save_all
from secure_mcp.weather.settings import (
    SettingsError,
    WeatherSettings,
    reread_credentials,
    settings_from,
)

ENV_CREDS = {"INTROSPECTION_CLIENT_ID": "rs", "INTROSPECTION_CLIENT_SECRET": "s3cret"}


def test_defaults(tmp_path: Path) -> None:
    settings = settings_from([], {**ENV_CREDS, "XDG_DATA_HOME": str(tmp_path)})
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.auth_server == "http://localhost:8003"
    assert settings.resource_url == "http://127.0.0.1:8000/mcp"
    assert settings.nws_base == "https://api.weather.gov"
    assert settings.nws_replay is False
    assert settings.required_scopes == ("weather:read",)
    assert settings.introspection_cache_ttl == 30.0
    assert settings.oauth_data_dir == tmp_path / "secure-mcp" / "oauth"
    assert settings.credentials == ResourceCredentials("rs", "s3cret")
    assert settings.credentials_source == "INTROSPECTION_CLIENT_ID/INTROSPECTION_CLIENT_SECRET"
    assert settings.mcp_path == "/mcp"
    assert settings.resource_metadata_url == (
        "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"
    )
    assert "s3cret" not in repr(settings)


def test_environment_values() -> None:
    env = {
        **ENV_CREDS,
        "WEATHER_HOST": "0.0.0.0",  # noqa: S104 - parsed, never bound in this test
        "WEATHER_PORT": "9001",
        "AUTH_SERVER_URL": "https://as.example/",
        "NWS_API_BASE": "http://nws.local/",
        "NWS_REPLAY": "yes",
        "NWS_USER_AGENT": "me (me@example.com)",
        "WEATHER_REQUIRED_SCOPES": "weather:read weather:alerts",
        "WEATHER_INTROSPECTION_CACHE_TTL": "0",
        "OAUTH_DATA_DIR": "/srv/oauth",
    }
    settings = settings_from([], env)
    assert settings.resource_url == "http://127.0.0.1:9001/mcp"
    assert settings.auth_server == "https://as.example"
    assert settings.nws_base == "http://nws.local"
    assert settings.nws_replay is True
    assert settings.nws_user_agent == "me (me@example.com)"
    assert settings.required_scopes == ("weather:read", "weather:alerts")
    assert settings.introspection_cache_ttl == 0
    assert settings.oauth_data_dir == Path("/srv/oauth")


def test_flags_override_environment() -> None:
    env = {**ENV_CREDS, "WEATHER_PORT": "9001", "AUTH_SERVER_URL": "https://env:1"}
    argv = [
        "--port", "9002", "--auth-server", "https://flag:2", "--nws-replay",
        "--resource-url", "https://weather.example/mcp", "--required-scope", "a b",
        "--introspection-cache-ttl", "5", "--oauth-data-dir", "/tmp/x", "--host", "localhost",
    ]  # fmt: skip
    settings = settings_from(argv, env)
    assert (settings.port, settings.host) == (9002, "localhost")
    assert settings.auth_server == "https://flag:2"
    assert settings.resource_url == "https://weather.example/mcp"
    assert settings.required_scopes == ("a", "b")
    assert settings.introspection_cache_ttl == 5
    assert settings.nws_replay is True


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        pytest.param([], {"WEATHER_PORT": "x"}, "WEATHER_PORT must be a number", id="port"),
        pytest.param(["--introspection-cache-ttl", "-1"], {}, "TTL must be 0", id="negative-ttl"),
        pytest.param([], {"WEATHER_INTROSPECTION_CACHE_TTL": "soon"}, "must be a number", id="ttl"),
        pytest.param(
            ["--auth-server", "localhost:8003"], {}, "--auth-server", id="issuer-no-scheme"
        ),
        pytest.param(["--auth-server", "http://a?x=1"], {}, "--auth-server", id="issuer-query"),
        pytest.param(["--resource-url", "/mcp"], {}, "absolute", id="resource-relative"),
        pytest.param(["--resource-url", "http://h:1"], {}, "needs a path", id="resource-no-path"),
        pytest.param(["--resource-url", "http://h/mcp#f"], {}, "needs a path", id="fragment"),
        pytest.param(["--resource-url", "http://h:x/mcp"], {}, "malformed port", id="bad-port"),
    ],
)
def test_bad_values_are_startup_errors(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_from(argv, {**ENV_CREDS, **env})


def test_credentials_from_oauth_data_dir(tmp_path: Path) -> None:
    other = ResourceCredentials("other", "x")
    mine = ResourceCredentials("weather", "y")
    save_all(tmp_path, {"http://127.0.0.1:8000/mcp": mine, "http://other/mcp": other})
    settings = settings_from(["--oauth-data-dir", str(tmp_path)], {})
    assert settings.credentials == mine
    assert settings.credentials_source == str(tmp_path / "resource-servers.json")


def test_missing_credentials_name_both_ways(tmp_path: Path) -> None:
    save_all(tmp_path, {"http://other/mcp": ResourceCredentials("other", "x")})
    with pytest.raises(SettingsError) as caught:
        settings_from([], {"OAUTH_DATA_DIR": str(tmp_path)})
    message = str(caught.value)
    assert "INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET" in message
    assert "start oauth.py first with the same OAUTH_DATA_DIR" in message
    assert str(tmp_path) in message


@pytest.mark.parametrize(
    ("env", "content"),
    [
        pytest.param({"INTROSPECTION_CLIENT_ID": "only-id"}, None, id="half-env"),
        pytest.param({}, "{broken", id="corrupt-file"),
    ],
)
def test_unusable_credentials_are_startup_errors(
    tmp_path: Path, env: dict[str, str], content: str | None
) -> None:
    if content is not None:
        (tmp_path / "resource-servers.json").write_text(content)
    with pytest.raises(SettingsError, match="cannot load introspection credentials"):
        settings_from(["--oauth-data-dir", str(tmp_path)], env)


def test_a_missing_folder_means_no_credentials(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no introspection credentials"):
        settings_from(["--oauth-data-dir", str(tmp_path / "missing")], {})
    assert not (tmp_path / "missing").exists()  # weather.py never creates it


def test_a_folder_others_can_write_is_not_trusted(tmp_path: Path) -> None:
    data = tmp_path / "oauth"
    save_all(data, {"http://127.0.0.1:8000/mcp": ResourceCredentials("planted", "x")})
    data.chmod(0o777)
    with pytest.raises(SettingsError) as caught:
        settings_from(["--oauth-data-dir", str(data)], {})
    message = str(caught.value)
    assert message.startswith("will not read introspection credentials: the folder ")
    assert "is writable by other users (mode 0777)" in message
    assert "\n" not in message


@pytest.mark.parametrize("change", ["writable", "foreign"])
def test_a_credentials_file_someone_else_could_write_is_not_trusted(
    tmp_path: Path, change: str
) -> None:
    save_all(tmp_path, {"http://127.0.0.1:8000/mcp": ResourceCredentials("planted", "x")})
    path = tmp_path / "resource-servers.json"
    if change == "writable":
        path.chmod(0o622)
    elif os.geteuid() == 0:
        os.chown(path, 65534, -1)
    else:
        pytest.skip("only root can give a file to another user")
    with pytest.raises(SettingsError, match=r"will not read .*resource-servers\.json"):
        settings_from(["--oauth-data-dir", str(tmp_path)], {})
    env = {"INTROSPECTION_CLIENT_ID": "rs", "INTROSPECTION_CLIENT_SECRET": "s"}
    assert settings_from(["--oauth-data-dir", str(tmp_path)], env).credentials  # not read


def test_settings_object_is_frozen() -> None:
    settings = WeatherSettings()
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


def test_token_and_connection_settings() -> None:
    defaults = settings_from([], ENV_CREDS)
    assert defaults.local_token_check is True
    assert defaults.failed_token_limit == 30
    assert defaults.connection_limits == ConnectionLimits()
    env = {
        **ENV_CREDS,
        "WEATHER_TOKEN_FORMAT": "any",
        "WEATHER_FAILED_TOKEN_LIMIT": "5",
        "WEATHER_HEADER_TIMEOUT": "2",
        "WEATHER_MAX_CONNECTIONS_PER_SOURCE": "20",
    }
    from_env = settings_from([], env)
    assert from_env.local_token_check is False
    assert from_env.failed_token_limit == 5
    assert from_env.connection_limits == ConnectionLimits(2.0, 30.0, 512, 20)
    argv = ["--token-format", "smcp", "--failed-token-limit", "7", "--max-connections", "40"]
    flags = settings_from(argv, env)
    assert (flags.local_token_check, flags.failed_token_limit) == (True, 7)
    assert flags.connection_limits == ConnectionLimits(2.0, 30.0, 40, 20)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        pytest.param([], {"WEATHER_TOKEN_FORMAT": "jwt"}, "smcp or any", id="format"),
        pytest.param(["--failed-token-limit", "0"], {}, "at least 1", id="limit-zero"),
        pytest.param([], {"WEATHER_FAILED_TOKEN_LIMIT": "x"}, "must be a number", id="limit"),
        pytest.param([], {"WEATHER_MAX_CONNECTIONS": "0"}, "at least 1", id="connections"),
    ],
)
def test_bad_token_and_connection_settings(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_from(argv, {**ENV_CREDS, **env})


def test_jwt_settings() -> None:
    settings = settings_from(["--introspect-jwt", "--jwks-cache-ttl", "60"], ENV_CREDS)
    assert (settings.introspect_jwt, settings.jwks_cache_ttl) == (True, 60.0)
    env = {**ENV_CREDS, "WEATHER_INTROSPECT_JWT": "1", "WEATHER_JWKS_CACHE_TTL": "90"}
    assert (settings_from([], env).introspect_jwt, settings_from([], env).jwks_cache_ttl) == (
        True,
        90.0,
    )
    defaults = settings_from([], ENV_CREDS)
    assert (defaults.introspect_jwt, defaults.jwks_cache_ttl) == (False, 300.0)
    with pytest.raises(SettingsError, match="JWKS cache TTL"):
        settings_from(["--jwks-cache-ttl", "0"], ENV_CREDS)
    with pytest.raises(SettingsError, match="WEATHER_JWKS_CACHE_TTL must be a number"):
        settings_from([], {**ENV_CREDS, "WEATHER_JWKS_CACHE_TTL": "soon"})


def test_credentials_are_read_again_with_the_same_checks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    resource = "http://127.0.0.1:8000/mcp"
    fresh = ResourceCredentials("rs-new", "secret-new")
    save_all(tmp_path / "data", {resource: fresh})
    assert reread_credentials(tmp_path / "data", resource) == fresh
    assert reread_credentials(tmp_path / "data", "http://127.0.0.1:9/mcp") is None
    assert reread_credentials(tmp_path / "missing", resource) is None
    os.chmod(tmp_path / "data", 0o777)  # noqa: S103 - the point of the test
    assert reread_credentials(tmp_path / "data", resource) is None
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "cannot read the introspection credentials again",
        "cannot read the introspection credentials again",
    ]
