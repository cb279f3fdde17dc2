"""Run the authorization server for tests: the real oauth.py process, or the app in process."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.processes import Program, free_port, run_program

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from secure_mcp.oauth.settings import OAuthSettings

DEFAULT_RESOURCE = "http://127.0.0.1:8000/mcp"
TEST_USERNAME = "demo"
TEST_PASSWORD = "test-password-not-a-secret"
IN_PROCESS_ISSUER = "http://127.0.0.1:8003"
# Every test client comes from 127.0.0.1: the suite raises the per-source limits far above what
# it sends, and the tests of the limits themselves set their own (strict) rates.
GENEROUS_RATE = "100000/1"
LIMITS_ENV = {
    "OAUTH_REGISTER_RATE": GENEROUS_RATE,
    "OAUTH_AUTHORIZE_RATE": GENEROUS_RATE,
    "OAUTH_LOGIN_FAILURES_PER_ACCOUNT": GENEROUS_RATE,
    "OAUTH_LOGIN_FAILURES_PER_SOURCE": GENEROUS_RATE,
}


@dataclass(frozen=True)
class OAuthServer:
    """A running oauth.py child process and how to reach and log into it."""

    issuer: str
    port: int
    data_dir: Path
    username: str
    password: str
    program: Program

    @property
    def metadata_url(self) -> str:
        """The server's RFC 8414 metadata document."""
        return f"{self.issuer}/.well-known/oauth-authorization-server"


def oauth_child_env(
    extra_env: Mapping[str, str] | None = None, resources: Sequence[str] = (DEFAULT_RESOURCE,)
) -> dict[str, str]:
    """Environment pinning every OAUTH_* setting: a developer's shell or .env cannot leak in."""
    return {
        "OAUTH_RESOURCES": ",".join(resources),
        "OAUTH_SCOPES": "weather:read",
        "OAUTH_ACCESS_TOKEN_TTL": "3600",
        "OAUTH_DEMO_USERNAME": TEST_USERNAME,
        "OAUTH_DEMO_PASSWORD": TEST_PASSWORD,
        "OAUTH_SESSION_SECRET": "",
        "INTROSPECTION_CLIENT_ID": "",
        "INTROSPECTION_CLIENT_SECRET": "",
        "OAUTH_DATABASE_URL": "",
        "OAUTH_AUDIT_LOG": "",
        "OAUTH_METRICS": "",
        **LIMITS_ENV,
        "OAUTH_HEADER_TIMEOUT": "",
        "OAUTH_BODY_TIMEOUT": "",
        "OAUTH_MAX_CONNECTIONS": "",
        "OAUTH_MAX_CONNECTIONS_PER_SOURCE": "",
        **(extra_env or {}),
    }


@contextlib.contextmanager
def run_oauth_server(
    tmp_path: Path,
    *,
    resources: Sequence[str] = (DEFAULT_RESOURCE,),
    extra_env: Mapping[str, str] | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
) -> Iterator[OAuthServer]:
    """Start the real oauth.py on `host` (data in tmp_path/oauth-data); stop it at block end.

    The issuer is `http://<host>:<port>`. Pass the same `port` and `tmp_path` again to restart
    a server over the same data.
    """
    port = port or free_port()
    issuer = f"http://{host}:{port}"
    data_dir = tmp_path / "oauth-data"
    env = oauth_child_env(extra_env, resources)
    args = ["--host", host, "--port", str(port), "--issuer", issuer]
    args += ["--data-dir", str(data_dir)]
    with run_program(
        "oauth.py", args, ready_url=f"{issuer}/health", log_dir=tmp_path, env=env
    ) as program:
        yield OAuthServer(
            issuer=issuer,
            port=port,
            data_dir=data_dir,
            username=env["OAUTH_DEMO_USERNAME"],
            password=env["OAUTH_DEMO_PASSWORD"],
            program=program,
        )


def make_oauth_app(tmp_path: Path, **overrides: Any) -> tuple[Starlette, OAuthSettings]:
    """The authorization server as an ASGI app (issuer http://127.0.0.1:8003, known password).

    Its lifespan must run before requests: `async with app.router.lifespan_context(app): ...`
    (or use `running_oauth_app`). `overrides` replace OAuthSettings fields.
    """
    from secure_mcp.common.ratelimit import Rate
    from secure_mcp.oauth.app import build_app
    from secure_mcp.oauth.settings import OAuthSettings

    generous = Rate.parse(GENEROUS_RATE)
    settings = OAuthSettings(
        data_dir=tmp_path / "oauth-data",
        demo_username=TEST_USERNAME,
        demo_password=TEST_PASSWORD,
        issuer=IN_PROCESS_ISSUER,
        register_rate=generous,
        authorize_rate=generous,
        login_failures_per_account=generous,
        login_failures_per_source=generous,
    )
    settings = dataclasses.replace(settings, **overrides)
    return build_app(settings), settings


@contextlib.asynccontextmanager
async def running_oauth_app(
    tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[Starlette, OAuthSettings]]:
    """`make_oauth_app` with its lifespan (storage, resource credentials) running."""
    app, settings = make_oauth_app(tmp_path, **overrides)
    async with app.router.lifespan_context(app):
        yield app, settings
