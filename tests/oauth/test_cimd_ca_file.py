"""--cimd-ca-file: extra trust anchors for metadata document fetches; TLS is still verified."""

from __future__ import annotations

import dataclasses
import json
import ssl
from pathlib import Path

import pytest

from secure_mcp.oauth import main as oauth_main
from secure_mcp.oauth.banner import banner
from secure_mcp.oauth.cimd_fetch import Fetcher, FetchError, FetchSeams, verifying_context
from secure_mcp.oauth.settings import settings_from
from tests.support.cimd_server import (
    FakeResolver,
    document,
    loopback_document_server,
    make_certificates,
    server_tls,
)


def test_flag_and_environment(tmp_path: Path) -> None:
    env = {"OAUTH_DATA_DIR": str(tmp_path), "OAUTH_CIMD_CA_FILE": "/etc/env-ca.pem"}
    assert settings_from([], env).cimd_ca_file == Path("/etc/env-ca.pem")
    flagged = settings_from(["--cimd-ca-file", "/etc/flag-ca.pem"], env)
    assert flagged.cimd_ca_file == Path("/etc/flag-ca.pem")
    assert settings_from([], {"OAUTH_CIMD_CA_FILE": ""}).cimd_ca_file is None


def test_banner_names_the_file(tmp_path: Path) -> None:
    settings = settings_from([], {"OAUTH_DATA_DIR": str(tmp_path)})
    assert "extra CA certificates" not in "\n".join(banner(settings))
    with_ca = dataclasses.replace(settings, cimd_ca_file=Path("/tmp/ca.pem"))
    assert "extra CA certificates for documents: /tmp/ca.pem" in "\n".join(banner(with_ca))


def test_context_still_verifies(tmp_path: Path) -> None:
    certs = make_certificates(str(tmp_path), "docs.test")
    context = verifying_context(Path(certs.ca_file))
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


async def test_only_the_added_ca_makes_the_document_server_trusted(tmp_path: Path) -> None:
    certs = make_certificates(str(tmp_path), "docs.test", ("127.0.0.1",))
    resolver = FakeResolver(
        {"docs.test": ["127.0.0.1"], "other.test": ["127.0.0.1"], "127.0.0.1": ["127.0.0.1"]}
    )
    seams = FetchSeams(resolver=resolver)
    with loopback_document_server(server_tls(certs)) as server:
        port = server.server.server_address[1]
        url = server.publish("/c.json", document(f"https://docs.test:{port}/c.json"))
        trusted = Fetcher(
            allow_insecure=True,
            timeout=5,
            max_bytes=5120,
            seams=seams,
            ca_file=Path(certs.ca_file),
        )
        fetched = await trusted.fetch(f"https://docs.test:{port}/c.json")
        assert json.loads(fetched.body)["client_id"] == f"https://docs.test:{port}/c.json"
        assert url.startswith("https://127.0.0.1:")
        by_ip = await trusted.fetch(f"https://127.0.0.1:{port}/c.json")  # the IP address SAN
        assert by_ip.body == fetched.body
        with pytest.raises(FetchError, match="could not be fetched"):  # name not in the cert
            await trusted.fetch(f"https://other.test:{port}/c.json")
        untrusted = Fetcher(allow_insecure=True, timeout=5, max_bytes=5120, seams=seams)
        with pytest.raises(FetchError, match="could not be fetched"):  # system roots only
            await untrusted.fetch(f"https://docs.test:{port}/c.json")
        assert server.hits == ["/c.json", "/c.json"]


@pytest.mark.parametrize("content", [None, "not a certificate\n"], ids=["missing", "not-pem"])
def test_unusable_file_stops_start_with_one_line(
    content: str | None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env from the repository
    ca = tmp_path / "ca.pem"
    if content is not None:
        ca.write_text(content, encoding="utf-8")
    argv = ["--data-dir", str(tmp_path / "data"), "--cimd-ca-file", str(ca)]
    assert oauth_main.main(argv, {}) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"oauth.py: cannot load the CA file {ca} (--cimd-ca-file): ")
    assert err.count("\n") == 1
    assert "Traceback" not in err
