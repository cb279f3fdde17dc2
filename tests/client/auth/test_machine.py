"""client.py --client-credentials: no browser, one token request, asked again before expiry."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from secure_mcp.client.auth import assertion_grants, machine
from secure_mcp.client.auth.assertion_grants import ID_JAG_TYPE, JWT_BEARER
from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.cli import parse
from secure_mcp.client.connection import connect, logout_stored
from secure_mcp.client.settings import ClientSettings
from tests.support.client_fakes import (
    AS_ORIGIN,
    RS_ORIGIN,
    RS_URL,
    FakeAuthServer,
    Router,
    weather_mcp,
)
from tests.support.scripted_browser import ScriptedBrowser

SECRET = "machine-secret-not-real"


@dataclass
class MachineAuthServer(FakeAuthServer):
    """The fake authorization server, also answering client_credentials requests."""

    grant_types: list[str] = field(
        default_factory=lambda: ["authorization_code", "client_credentials"]
    )
    forms: list[dict[str, str]] = field(default_factory=list)
    headers: list[str | None] = field(default_factory=list)
    refuse_token: bool = False
    revocations: list[tuple[dict[str, str], str | None]] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "grant_types_supported": self.grant_types}

    async def _token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        if form["grant_type"] not in {"client_credentials", JWT_BEARER}:
            return await super()._token(request)
        self.forms.append(form)
        self.headers.append(request.headers.get("authorization"))
        self.log.append(f"POST /token {form['grant_type']}")
        if self.refuse_token:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        body = self._issue("ci", form.get("scope", "weather:read"), form.get("resource"))
        del body["refresh_token"]
        return JSONResponse(body)

    async def _revoke(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.revocations.append((form, request.headers.get("authorization")))
        return await super()._revoke(request)


@pytest.fixture
def machine_settings(tmp_path: Path) -> ClientSettings:
    return ClientSettings(
        state_dir=tmp_path / "state",
        server_url=RS_URL,
        client_id="ci",
        client_secret=SECRET,
        client_issuer=AS_ORIGIN,
        client_credentials=True,
    )


async def call(
    settings: ClientSettings,
    server: MachineAuthServer,
    lines: list[str],
    between: Callable[[], None] = lambda: None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Connect and call get_alerts twice, the second time with the token past its early expiry."""
    browser = ScriptedBrowser()
    failure: ClientConnectError | None = None
    mcp = weather_mcp(server)
    app = mcp.streamable_http_app(json_response=True, stateless_http=True)
    async with mcp.session_manager.run():
        router = Router({RS_ORIGIN: app, AS_ORIGIN: server.app(), **(extra or {})})
        try:
            async with connect(
                settings, write=lines.append, http_transport=router, opener=browser.open
            ) as session:
                result = await session.call_tool("get_alerts", {"state": "CA"})
                assert "No alerts in CA" in str(result.content)
                session._provider.context.token_expiry_time = time.time() - 1  # time passes
                between()
                result = await session.call_tool("get_alerts", {"state": "CA"})
                assert "No alerts in CA" in str(result.content)
        except ClientConnectError as exc:  # raised here, outside the server's task group
            failure = exc
    if failure is not None:
        raise failure
    assert browser.opened == []


async def test_client_secret_basic(machine_settings: ClientSettings, lines: list[str]) -> None:
    server = MachineAuthServer()
    await call(machine_settings, server, lines)
    assert len(server.forms) == 2  # asked again once the token was (almost) expired
    form = server.forms[0]
    assert form["grant_type"] == "client_credentials"
    assert form["resource"] == RS_URL
    assert "client_secret" not in form
    expected = base64.b64encode(f"ci:{SECRET}".encode()).decode()
    assert server.headers[0] == f"Basic {expected}"
    assert "POST /register" not in server.log
    assert not server.authorize_params
    first, second = list(server.tokens)[:2]
    assert server.tokens[first].expires_at > time.time()  # renewed before the old one expired
    assert second
    state = machine.machine_state_dir(machine_settings) / "oauth-state.json"
    assert state.exists()  # its own folder, not the person's
    assert not (machine_settings.state_dir / "oauth-state.json").exists()


def write_key(path: Path, key: ECKey | OKPKey | RSAKey, mode: int = 0o600) -> Path:
    path.write_bytes(key.as_pem(private=True))
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("make", "alg"),
    [
        pytest.param(lambda: ECKey.generate_key("P-256"), "ES256", id="p256"),
        pytest.param(lambda: ECKey.generate_key("P-384"), "ES384", id="p384"),
        pytest.param(lambda: OKPKey.generate_key("Ed25519"), "Ed25519", id="ed25519"),
        pytest.param(lambda: RSAKey.generate_key(2048), "RS256", id="rsa"),
    ],
)
async def test_private_key_jwt(
    machine_settings: ClientSettings, tmp_path: Path, lines: list[str], make: Any, alg: str
) -> None:
    key = make()
    settings = dataclasses.replace(
        machine_settings, client_secret=None, private_key_file=write_key(tmp_path / "k.pem", key)
    )
    server = MachineAuthServer()
    await call(settings, server, lines)
    first, second = server.forms
    assert server.headers == [None, None]
    assert first["client_assertion_type"] == machine.ASSERTION_TYPE
    token = jwt.decode(first["client_assertion"], key, algorithms=[alg])
    assert token.header["alg"] == alg
    claims = token.claims
    assert claims["iss"] == claims["sub"] == "ci"
    assert claims["aud"] == AS_ORIGIN
    assert 0 < claims["exp"] - claims["iat"] <= 60
    assert claims["jti"] != json.loads(_payload(second["client_assertion"]))["jti"]


def _payload(signed: str) -> bytes:
    part = signed.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


async def test_refused_credentials_are_one_line(
    machine_settings: ClientSettings, lines: list[str]
) -> None:
    server = MachineAuthServer(refuse_token=True)
    with pytest.raises(ClientConnectError, match="invalid_client"):
        await call(machine_settings, server, lines)
    assert len(server.forms) == 1


async def test_a_server_without_the_grant(
    machine_settings: ClientSettings, lines: list[str]
) -> None:
    server = MachineAuthServer(grant_types=["authorization_code"])
    with pytest.raises(ClientConnectError, match="does not offer the client_credentials grant"):
        await call(machine_settings, server, lines)
    assert server.forms == []


async def test_another_authorization_server_gets_nothing(
    machine_settings: ClientSettings, lines: list[str]
) -> None:
    settings = dataclasses.replace(machine_settings, client_issuer="http://127.0.0.1:9999")
    server = MachineAuthServer()
    with pytest.raises(ClientConnectError, match="its credentials were not sent"):
        await call(settings, server, lines)
    assert server.forms == []


@pytest.mark.parametrize(
    ("mode", "content", "message"),
    [
        pytest.param(0o644, None, "readable by other users", id="shared"),
        pytest.param(0o600, b"not a key", "holds no PEM private key", id="garbage"),
        pytest.param(0o600, "public", "holds no PEM private key", id="public-key"),
        pytest.param(0o600, "p521", "P-521 is not supported", id="p521"),
    ],
)
def test_unusable_key_files(tmp_path: Path, mode: int, content: Any, message: str) -> None:
    key = ECKey.generate_key("P-521" if content == "p521" else "P-256")
    path = write_key(tmp_path / "k.pem", key, mode)
    if content == "public":
        path.write_bytes(key.as_pem(private=False))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(ClientConnectError, match=message):
        machine.load_signing_key(path)


def test_missing_and_linked_key_files(tmp_path: Path) -> None:
    with pytest.raises(ClientConnectError, match="No such file"):
        machine.load_signing_key(tmp_path / "missing.pem")
    real = write_key(tmp_path / "real.pem", ECKey.generate_key("P-256"))
    os.symlink(real, tmp_path / "link.pem")
    with pytest.raises(ClientConnectError, match="symbolic link"):
        machine.load_signing_key(tmp_path / "link.pem")
    assert "secure" in repr(machine.load_signing_key(real))


def test_small_rsa_keys_are_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    pem = small.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = tmp_path / "small.pem"
    path.write_bytes(pem)
    path.chmod(0o600)
    with pytest.raises(ClientConnectError, match="at least 2048"):  # and no warning
        machine.load_signing_key(path)


ENV = {"MCP_CLIENT_STATE_DIR": "/tmp/x"}
BASE = ["--client-credentials", "--client-id", "ci", "--client-issuer", AS_ORIGIN]


def test_flags(tmp_path: Path) -> None:
    settings, _ = parse([*BASE, "--call", "get_alerts", "{}"], {**ENV, "MCP_CLIENT_SECRET": "s"})
    assert settings.client_credentials
    assert settings.client_secret == "s"
    key = tmp_path / "k.pem"
    settings, _ = parse([*BASE, "--private-key-file", str(key)], ENV)
    assert settings.private_key_file == key
    settings, _ = parse(BASE, {**ENV, "MCP_CLIENT_PRIVATE_KEY_FILE": str(key)})
    assert settings.private_key_file == key
    wif = {**ENV, "MCP_WIF_TOKEN_FILE": str(key), "MCP_CLIENT_ISSUER": AS_ORIGIN}
    wif["MCP_CLIENT_ID"] = "workload"
    settings, _ = parse([], wif)
    assert settings.machine
    assert settings.wif_token_file == key
    enterprise = {
        **ENV,
        "MCP_IDP_TOKEN_ENDPOINT": "https://idp.example/token",
        "MCP_IDP_CLIENT_ID": "idp-client",
        "MCP_ID_TOKEN_FILE": str(key),
        "MCP_CLIENT_ID": "c",
        "MCP_CLIENT_SECRET": "s",
        "MCP_CLIENT_ISSUER": AS_ORIGIN,
    }
    settings, _ = parse([], enterprise)
    assert settings.machine
    assert (settings.idp_token_endpoint, settings.idp_client_id) == (
        "https://idp.example/token",
        "idp-client",
    )


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        pytest.param(BASE, {}, "exactly one of", id="no-credentials"),
        pytest.param(
            [*BASE, "--private-key-file", "k"],
            {"MCP_CLIENT_SECRET": "s"},
            "exactly one of",
            id="both",
        ),
        pytest.param(
            ["--client-credentials", "--client-issuer", AS_ORIGIN],
            {},
            "needs --client-id",
            id="no-client-id",
        ),
        pytest.param(
            ["--wif-token-file", "t", "--client-issuer", AS_ORIGIN],
            {},
            "needs --client-id",
            id="wif-no-client-id",
        ),
        pytest.param(["--client-credentials"], {}, "needs --client-issuer", id="no-issuer"),
        pytest.param(["--private-key-file", "k"], {}, "needs --client-credentials", id="key-alone"),
        pytest.param(
            [*BASE, "--client-metadata-url", "https://a.example/c"],
            {"MCP_CLIENT_SECRET": "s"},
            "browser sign-in only",
            id="cimd",
        ),
        pytest.param([*BASE, "--wif-token-file", "t"], {}, "choose one of", id="two-modes"),
        pytest.param(
            ["--wif-token-file", "t", "--client-issuer", AS_ORIGIN, "--client-id", "w"],
            {"MCP_CLIENT_SECRET": "s"},
            "sends no client secret",
            id="wif-secret",
        ),
        pytest.param(["--id-token-file", "t"], {}, "need --idp-token-endpoint", id="idp-alone"),
        pytest.param(
            ["--idp-token-endpoint", "https://idp.example/token", "--client-issuer", AS_ORIGIN],
            {"MCP_CLIENT_ID": "c"},
            "needs --id-token-file and MCP_CLIENT_SECRET",
            id="idp-no-token",
        ),
    ],
)
def test_bad_flags(
    argv: list[str], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(argv, {**ENV, **env})
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def provider_for(settings: ClientSettings, lines: list[str]) -> machine.MachineOAuthProvider:
    from secure_mcp.client.auth.interaction import Authorizer
    from secure_mcp.client.auth.provider import ProviderParts
    from secure_mcp.client.auth.storage import FileTokenStorage

    authorizer = Authorizer(
        paste=True, open_browser=False, write=lines.append, opener=lambda url: False, input_fn=input
    )
    storage = FileTokenStorage(machine.machine_state_dir(settings), RS_URL)
    return machine.MachineOAuthProvider(ProviderParts(settings, storage, authorizer, lines.append))


async def test_never_a_browser_nor_a_registration(
    machine_settings: ClientSettings, lines: list[str]
) -> None:
    import httpx2
    from mcp.shared.auth import OAuthMetadata

    provider = provider_for(machine_settings, lines)
    with pytest.raises(ClientConnectError, match="Could not discover"):
        provider.check_metadata()
    with pytest.raises(ClientConnectError, match="never signs in through a browser"):
        await provider._redirect(f"{AS_ORIGIN}/authorize")
    provider.context.oauth_metadata = OAuthMetadata.model_validate(MachineAuthServer().metadata())
    register = httpx2.Request("POST", f"{AS_ORIGIN}/register", json={})
    with pytest.raises(ClientConnectError, match="nothing was registered"):
        provider._before(register)
    provider.context.client_info = machine.machine_client(machine_settings, None)
    request = await provider._perform_authorization()  # no resource metadata, no scope
    assert request.content == b"grant_type=client_credentials"


# --- workload identity (SEP-1933) and enterprise-managed authorization (SEP-990) ---

IDP_ORIGIN = "http://127.0.0.1:9500"


def jwt_file(path: Path, text: str = "header.claims.signature", mode: int = 0o600) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def wif_settings(tmp_path: Path, token: Path) -> ClientSettings:
    return ClientSettings(
        state_dir=tmp_path / "state",
        server_url=RS_URL,
        client_id="workload",
        client_issuer=AS_ORIGIN,
        wif_token_file=token,
    )


async def test_workload_identity(tmp_path: Path, lines: list[str]) -> None:
    token = jwt_file(tmp_path / "wif.jwt", "a.b.c")
    server = MachineAuthServer(grant_types=[JWT_BEARER])

    def rotate() -> None:  # the platform writes a new token between the two requests
        jwt_file(token, "d.e.f")

    await call(wif_settings(tmp_path, token), server, lines, between=rotate)
    first, second = server.forms
    assert first == {
        "grant_type": JWT_BEARER,
        "assertion": "a.b.c",
        "resource": RS_URL,
        "client_id": "workload",  # no scope: the registration says (no --scope given)
    }
    assert second["assertion"] == "d.e.f"  # read again for each token request
    assert server.headers == [None, None]  # a public client: no secret


async def test_workload_identity_refused_is_final(tmp_path: Path, lines: list[str]) -> None:
    server = MachineAuthServer(grant_types=[JWT_BEARER], refuse_token=True)
    token = jwt_file(tmp_path / "wif.jwt")
    with pytest.raises(ClientConnectError):
        await call(wif_settings(tmp_path, token), server, lines)
    assert len(server.forms) == 1  # no retry, no other grant (SEP-1933)


@dataclass
class FakeIdp:
    """An enterprise identity provider's RFC 8693 token endpoint issuing ID-JAGs."""

    forms: list[dict[str, str]] = field(default_factory=list)
    answer: Any = None  # replaces the ID-JAG answer when set
    status: int = 200

    def app(self) -> Starlette:
        async def token(request: Request) -> Response:
            self.forms.append({k: str(v) for k, v in (await request.form()).items()})
            if isinstance(self.answer, bytes):
                return Response(self.answer, status_code=self.status)
            body = self.answer or {
                "access_token": f"id-jag-{len(self.forms)}",
                "issued_token_type": ID_JAG_TYPE,
                "token_type": "N_A",
            }
            return JSONResponse(body, status_code=self.status)

        return Starlette(routes=[Route("/token", token, methods=["POST"])])


def enterprise_settings(tmp_path: Path, endpoint: str = f"{IDP_ORIGIN}/token") -> ClientSettings:
    return ClientSettings(
        state_dir=tmp_path / "state",
        server_url=RS_URL,
        client_id="xaa",
        client_secret=SECRET,
        client_issuer=AS_ORIGIN,
        idp_token_endpoint=endpoint,
        idp_client_id="idp-client",
        id_token_file=jwt_file(tmp_path / "id.jwt", "i.d.t"),
    )


async def test_enterprise_managed_authorization(tmp_path: Path, lines: list[str]) -> None:
    server, idp = MachineAuthServer(grant_types=[JWT_BEARER]), FakeIdp()
    await call(enterprise_settings(tmp_path), server, lines, extra={IDP_ORIGIN: idp.app()})
    assert idp.forms[0] == {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "requested_token_type": ID_JAG_TYPE,
        "subject_token": "i.d.t",
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
        "audience": AS_ORIGIN,
        "resource": RS_URL,
        "client_id": "idp-client",
    }
    assert [form["assertion"] for form in server.forms] == ["id-jag-1", "id-jag-2"]
    assert server.forms[0]["grant_type"] == JWT_BEARER
    expected = base64.b64encode(f"xaa:{SECRET}".encode()).decode()
    assert server.headers == [f"Basic {expected}"] * 2
    assert "client_secret" not in server.forms[0]


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        pytest.param({"error": "invalid_grant"}, 400, id="refused"),
        pytest.param(b"<html>", 200, id="not-json"),
        pytest.param({"access_token": "x", "issued_token_type": "other"}, 200, id="not-id-jag"),
        pytest.param(["x"], 200, id="not-object"),
    ],
)
async def test_enterprise_idp_failures(
    tmp_path: Path, lines: list[str], answer: Any, status: int
) -> None:
    server, idp = MachineAuthServer(grant_types=[JWT_BEARER]), FakeIdp(answer=answer, status=status)
    settings = dataclasses.replace(enterprise_settings(tmp_path), idp_client_id=None)
    with pytest.raises(ClientConnectError, match="did not issue an ID-JAG"):
        await call(settings, server, lines, extra={IDP_ORIGIN: idp.app()})
    assert server.forms == []
    assert "client_id" not in idp.forms[0]


@pytest.mark.parametrize("endpoint", ["http://idp.example/token", "file:///etc/passwd"])
async def test_enterprise_idp_must_be_https(
    tmp_path: Path, lines: list[str], endpoint: str
) -> None:
    server = MachineAuthServer(grant_types=[JWT_BEARER])
    with pytest.raises(ClientConnectError, match="must be https"):
        await call(enterprise_settings(tmp_path, endpoint), server, lines)


@pytest.mark.parametrize(
    ("text", "mode", "message"),
    [
        pytest.param("a.b.c", 0o640, "readable by other users", id="shared"),
        pytest.param("not a jwt", 0o600, "is not a JWT", id="garbage"),
        pytest.param("a" * 20000, 0o600, "is not a JWT", id="huge"),
    ],
)
def test_unusable_token_files(tmp_path: Path, text: str, mode: int, message: str) -> None:
    path = jwt_file(tmp_path / "t.jwt", text, mode)
    with pytest.raises(ClientConnectError, match=message):
        assertion_grants.read_token_file(path, "workload token")
    with pytest.raises(ClientConnectError, match="Cannot read the ID token"):
        assertion_grants.read_token_file(tmp_path / "missing", "ID token")


async def test_scope_only_when_asked(machine_settings: ClientSettings, lines: list[str]) -> None:
    server = MachineAuthServer()
    await call(dataclasses.replace(machine_settings, scope="weather:read"), server, lines)
    assert server.forms[0]["scope"] == "weather:read"
    provider = provider_for(machine_settings, lines)
    provider.context.client_metadata.scope = "weather:read weather:alerts"  # a step-up's union
    provider._sign_in_scope = None
    provider._choose_scope()
    assert provider.context.client_metadata.scope == "weather:read weather:alerts"
    provider._sign_in_scope = "weather:read weather:alerts"  # a 401 naming scopes
    provider._choose_scope()
    assert provider.context.client_metadata.scope is None


@pytest.mark.parametrize("with_key", [False, True])
async def test_logout_revokes_as_the_token_endpoint_authenticates(
    machine_settings: ClientSettings, tmp_path: Path, lines: list[str], with_key: bool
) -> None:
    key = ECKey.generate_key("P-256")
    settings = machine_settings
    if with_key:
        pem = write_key(tmp_path / "k.pem", key)
        settings = dataclasses.replace(settings, client_secret=None, private_key_file=pem)
    server = MachineAuthServer()
    await call(settings, server, lines)
    router = Router({AS_ORIGIN: server.app()})
    assert await logout_stored(settings, lines.append, http_transport=router)
    form, header = server.revocations[0]
    assert form["token_type_hint"] == "access_token"  # no refresh token to revoke first
    if with_key:
        assert header is None
        assert form["client_assertion_type"] == machine.ASSERTION_TYPE
        claims = jwt.decode(form["client_assertion"], key, algorithms=["ES256"]).claims
        assert claims["aud"] == AS_ORIGIN
    else:
        assert header == "Basic " + base64.b64encode(f"ci:{SECRET}".encode()).decode()
    assert f"Signed out of {RS_URL}." in lines


def test_revocation_assertions_from_the_session(
    machine_settings: ClientSettings, tmp_path: Path, lines: list[str]
) -> None:
    assert provider_for(machine_settings, lines).revocation_assertion() is None
    key = ECKey.generate_key("P-256")
    pem = write_key(tmp_path / "k.pem", key)
    settings = dataclasses.replace(machine_settings, client_secret=None, private_key_file=pem)
    provider = provider_for(settings, lines)
    provider._key = machine.load_signing_key(pem)
    make = provider.revocation_assertion()
    assert make is not None
    assert jwt.decode(make(), key, algorithms=["ES256"]).claims["sub"] == "ci"


def test_help_never_splits_a_flag_at_a_hyphen() -> None:
    from secure_mcp.client.cli import build_parser

    for width in (50, 70, 100):
        formatter = build_parser().formatter_class("client.py", width=width)
        lines = formatter._split_lines("x --idp-token-endpoint " * 8, width - 24)
        assert not [line for line in lines if line.endswith("-")]
    assert "--idp-token-endpoint" in build_parser().format_help()
