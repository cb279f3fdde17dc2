"""CIMD pieces alone: cache lifetimes, the bounded cache, settings, banner, start-up checks."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import httpx2
import pytest

from secure_mcp.oauth import cimd
from secure_mcp.oauth import main as oauth_main
from secure_mcp.oauth.banner import banner
from secure_mcp.oauth.cimd_fetch import FetchSeams
from secure_mcp.oauth.errors import InvalidClientDocument
from secure_mcp.oauth.settings import OAuthSettings, SettingsError, settings_from
from tests.support.cimd_server import DocumentHost, FakeClock, FakeResolver, document

NOW = "Thu, 26 Nov 2026 12:00:00 GMT"


@pytest.mark.parametrize(
    ("headers", "ttl"),
    [
        pytest.param({}, 300, id="no-headers-default"),
        pytest.param({"cache-control": "max-age=600"}, 600, id="max-age"),
        pytest.param({"cache-control": "public, max-age=7200"}, 7200, id="max-age-listed"),
        pytest.param({"cache-control": "max-age=5"}, 60, id="max-age-raised-to-a-minute"),
        pytest.param({"cache-control": "max-age=9999999"}, 86400, id="max-age-capped-to-a-day"),
        pytest.param({"cache-control": "max-age=abc"}, 60, id="max-age-garbage"),
        pytest.param({"cache-control": 'max-age="900"'}, 900, id="max-age-quoted"),
        pytest.param(
            {b"cache-control": "max-age=\u00b2".encode("latin-1")}, 60, id="max-age-latin1-digit"
        ),
        pytest.param({"cache-control": "no-store"}, 60, id="no-store-floor"),
        pytest.param({"cache-control": "no-cache, max-age=900"}, 60, id="no-cache-floor"),
        pytest.param({"expires": "Thu, 26 Nov 2026 13:00:00 GMT", "date": NOW}, 3600, id="expires"),
        pytest.param({"expires": "0", "date": NOW}, 60, id="expires-invalid"),
        pytest.param(
            {"expires": "Thu, 26 Nov 2026 11:00:00 GMT", "date": NOW}, 60, id="expires-past"
        ),
        pytest.param(
            {"cache-control": "max-age=120", "expires": "Thu, 26 Nov 2030 13:00:00 GMT"},
            120,
            id="max-age-wins-over-expires",
        ),
        pytest.param({"expires": "Thu, 26 Nov 2099 13:00:00 GMT"}, 86400, id="expires-no-date"),
    ],
)
def test_cache_ttl(headers: dict[str, str] | dict[bytes, bytes], ttl: float) -> None:
    assert cimd.cache_ttl(httpx2.Headers(headers)) == ttl


def _documents(tmp_path: Path, host: DocumentHost, clock: FakeClock) -> cimd.Documents:
    settings = OAuthSettings(data_dir=tmp_path, demo_password="x" * 12)
    resolver = FakeResolver({"app.example": ["93.184.215.14"]})
    return cimd.Documents(
        settings, FetchSeams(resolver=resolver, transport=host.transport(), clock=clock)
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"{not json", "not valid JSON", id="not-json"),
        pytest.param(b"\xff\xfe", "not valid JSON", id="not-utf8"),
        pytest.param(b"[1, 2]", "not a JSON object", id="json-array"),
    ],
)
async def test_unparseable_documents(tmp_path: Path, body: bytes, message: str) -> None:
    host = DocumentHost()
    host.serve("/c.json", body)
    documents = _documents(tmp_path, host, FakeClock())
    with pytest.raises(InvalidClientDocument, match=message):
        await documents.client("https://app.example/c.json")


async def test_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cimd, "MAX_ENTRIES", 2)
    host = DocumentHost()
    urls = [f"https://app.example/{n}.json" for n in range(3)]
    for url in urls:
        host.serve(httpx2.URL(url).path, document(url))
    documents = _documents(tmp_path, host, FakeClock())
    for url in urls:
        await documents.client(url)
    await documents.client(urls[2])  # still cached
    assert len(host.requests) == 3
    await documents.client(urls[0])  # the oldest was evicted: fetched again
    assert len(host.requests) == 4


def test_flag_and_environment(tmp_path: Path) -> None:
    base = ["--data-dir", str(tmp_path)]
    assert settings_from(base, {}).cimd_allow_insecure is False
    assert settings_from([*base, "--cimd-allow-insecure"], {}).cimd_allow_insecure is True
    for value in ("1", "true", "YES", "on"):
        env = {"OAUTH_CIMD_ALLOW_INSECURE": value}
        assert settings_from(base, env).cimd_allow_insecure is True
    for value in ("", "0", "false", "off", "no"):
        env = {"OAUTH_CIMD_ALLOW_INSECURE": value}
        assert settings_from(base, env).cimd_allow_insecure is False
    with pytest.raises(SettingsError, match="OAUTH_CIMD_ALLOW_INSECURE must be 1 or 0"):
        settings_from(base, {"OAUTH_CIMD_ALLOW_INSECURE": "maybe"})


def test_limits_must_be_positive(tmp_path: Path) -> None:
    settings = OAuthSettings(data_dir=tmp_path, demo_password="x" * 12)
    with pytest.raises(SettingsError, match="limits must be positive"):
        dataclasses.replace(settings, cimd_timeout=0)
    with pytest.raises(SettingsError, match="limits must be positive"):
        dataclasses.replace(settings, cimd_max_bytes=0)


def test_banner_announces_insecure_mode_loudly(tmp_path: Path) -> None:
    settings = OAuthSettings(data_dir=tmp_path, demo_password="x" * 12)
    assert "https, public hosts" in "\n".join(banner(settings))
    assert "WARNING" not in "\n".join(banner(settings))
    loud = "\n".join(banner(dataclasses.replace(settings, cimd_allow_insecure=True)))
    assert "client ID metadata documents: INSECURE (development)" in loud
    assert "!! WARNING: --cimd-allow-insecure" in loud
    assert "SSRF" in loud


def test_malformed_credentials_file_stops_start_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env from the repository
    data = tmp_path / "data"
    data.mkdir()
    (data / "resource-servers.json").write_text("{not json", encoding="utf-8")
    code = oauth_main.main(["--data-dir", str(data)], {})
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("oauth.py: cannot read ")
    assert "resource-servers.json" in err
    assert "fix or delete the file" in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_wrong_shape_credentials_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "resource-servers.json").write_text('{"resources": []}', encoding="utf-8")
    assert oauth_main.main(["--data-dir", str(data)], {}) == 2
    assert "has no 'resources' object" in capsys.readouterr().err


def test_data_dir_that_is_a_file_stops_start_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").write_text("", encoding="utf-8")
    assert oauth_main.main(["--data-dir", str(tmp_path / "data")], {}) == 2
    err = capsys.readouterr().err
    assert err.startswith("oauth.py: ")
    assert err.count("\n") == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_data_dir_stops_start_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "oauth.sqlite3").touch()
    (data / "oauth.sqlite3").chmod(stat.S_IRUSR)  # read-only database file
    try:
        assert oauth_main.main(["--data-dir", str(data)], {}) == 2
        err = capsys.readouterr().err
        assert err.startswith("oauth.py: ")
        assert "Permission denied" in err
        assert err.count("\n") == 1
        data.chmod(0)  # the folder itself unreadable
        assert oauth_main.main(["--data-dir", str(data)], {}) == 2
        assert "Permission denied" in capsys.readouterr().err
    finally:
        data.chmod(0o700)
        (data / "oauth.sqlite3").chmod(0o600)


def test_document_error_descriptions_use_the_rfc6749_charset() -> None:
    error = InvalidClientDocument('method "p\u00e9\\x\n" refused')
    assert error.description == "method ?p??x?? refused"
