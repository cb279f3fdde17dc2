"""A local attacker's ways in before the first request: a planted `.env`, a shared data folder,
weak secrets, and the other loopback address of a localhost issuer (real processes)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from secure_mcp.common.resource_credentials import ResourceCredentials, save_all
from tests.support.oauth_server import LIMITS_ENV, TEST_PASSWORD, run_oauth_server
from tests.support.processes import ROOT, free_port, run_program

pytestmark = pytest.mark.process

ENTRY_POINTS = ("oauth.py", "weather.py", "client.py", "demo.py")
# Runs each entry point as __main__ with --help (argparse exits once the .env was read) and
# reports what the environment then holds: the one observable effect of loading a .env file.
# First with only the planted parent file, then with the project's own `.env` as well.
SHOW_ENV = """
import os, runpy, sys
project, scripts = sys.argv[1], sys.argv[2:]
for own in (False, True):
    for script in scripts:
        os.environ.pop("PLANTED", None)
        own_env = os.path.join(project, ".env")
        if own:
            with open(own_env, "w") as f:
                f.write("PLANTED=next-to-the-script\\n")
        sys.argv = [os.path.join(project, script), "--help"]
        try:
            runpy.run_path(sys.argv[0], run_name="__main__")
        except SystemExit:
            pass
        print(script, own, os.environ.get("PLANTED", "-"))
"""


def run(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment with nothing the planted file could otherwise be masked by."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OAUTH_", "PLANTED"))}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def project_copy(tmp_path: Path) -> Path:
    """The four entry points in tmp/parent/project, with a `.env` planted in tmp/parent."""
    project = tmp_path / "parent" / "project"
    project.mkdir(parents=True)
    for name in ENTRY_POINTS:
        shutil.copy(ROOT / name, project / name)
    (tmp_path / "parent" / ".env").write_text(
        "PLANTED=from-the-parent-folder\nOAUTH_ACCESS_TOKEN_TTL=not-a-number\n"
    )
    return project


def test_a_dotenv_in_a_parent_folder_is_ignored(tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    done = run(["-c", SHOW_ENV, str(project), *ENTRY_POINTS], clean_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    seen = [line for line in done.stdout.splitlines() if line.endswith(("-", "script"))]
    assert seen == [f"{name} False -" for name in ENTRY_POINTS] + [
        f"{name} True next-to-the-script" for name in ENTRY_POINTS
    ]


def test_oauth_py_starts_despite_a_poisoned_parent_dotenv(tmp_path: Path) -> None:
    project = project_copy(tmp_path)  # the planted file makes the token lifetime unusable
    port = free_port()
    env = clean_env(OAUTH_DEMO_PASSWORD=TEST_PASSWORD, **LIMITS_ENV)
    args = ["--host", "127.0.0.1", "--port", str(port), "--issuer", f"http://127.0.0.1:{port}"]
    args += ["--data-dir", str(tmp_path / "data")]
    with run_program(
        str(project / "oauth.py"),
        args,
        ready_url=f"http://127.0.0.1:{port}/health",
        log_dir=tmp_path,
        env=env,
    ) as program:
        assert httpx2.get(f"http://127.0.0.1:{port}/health").status_code == 200
    assert "OAUTH_ACCESS_TOKEN_TTL" not in program.output()


def test_a_shared_data_folder_stops_oauth_py(tmp_path: Path) -> None:
    data = tmp_path / "shared"
    data.mkdir()
    data.chmod(0o777)
    env = clean_env(OAUTH_DEMO_PASSWORD=TEST_PASSWORD)
    done = run(["oauth.py", "--data-dir", str(data), "--port", str(free_port())], env)
    assert done.returncode == 2
    assert done.stderr == (
        f"oauth.py: the folder {data} is writable by other users (mode 0777): they could plant "
        f"files there; check its contents, then run `chmod go-w {data}`, or use another one\n"
    )
    assert not (data / "oauth.sqlite3").exists()  # nothing was used or created


@pytest.mark.parametrize("attack", ["shared-folder", "writable-file", "foreign-file"])
def test_weather_py_trusts_no_planted_credentials(tmp_path: Path, attack: str) -> None:
    data = tmp_path / "oauth-data"
    save_all(data, {"http://127.0.0.1:8000/mcp": ResourceCredentials("planted", "secret")})
    credentials = data / "resource-servers.json"
    if attack == "shared-folder":
        data.chmod(0o777)
    elif attack == "writable-file":
        credentials.chmod(0o666)
    elif os.geteuid() == 0:
        os.chown(credentials, 65534, -1)
    else:
        pytest.skip("only root can give a file to another user")
    env = {**clean_env(), "INTROSPECTION_CLIENT_ID": "", "INTROSPECTION_CLIENT_SECRET": ""}
    done = run(["weather.py", "--oauth-data-dir", str(data), "--port", str(free_port())], env)
    assert done.returncode == 2
    assert done.stderr.startswith("weather.py: will not read introspection credentials: ")
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "OAUTH_DEMO_PASSWORD",
            "short-pass1",
            "OAUTH_DEMO_PASSWORD must be at least 12 characters",
        ),
        ("OAUTH_SESSION_SECRET", "s" * 31, "OAUTH_SESSION_SECRET must be at least 32 bytes"),
    ],
)
def test_weak_secrets_stop_oauth_py(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    env = clean_env(**{"OAUTH_DEMO_PASSWORD": TEST_PASSWORD, variable: value})
    done = run(["oauth.py", "--data-dir", str(tmp_path / "d"), "--port", str(free_port())], env)
    assert done.returncode == 2
    assert done.stderr.startswith(f"oauth.py: {message}")
    assert done.stderr.count("\n") == 1


def test_a_localhost_issuer_holds_both_loopback_addresses(tmp_path: Path) -> None:
    with run_oauth_server(tmp_path, host="localhost") as server:
        program = server.program
        assert f"listening:   127.0.0.1:{server.port} and [::1]:{server.port}" in (
            server.program.output()
        )
        for family, address in ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")):
            with (
                socket.socket(family, socket.SOCK_STREAM) as squatter,
                pytest.raises(OSError, match="in use"),
            ):
                squatter.bind((address, server.port))  # no other program can take either
        for host in ("127.0.0.1", "[::1]"):
            response = httpx2.get(f"http://{host}:{server.port}/health", timeout=5)
            assert response.status_code == 200
    assert program.process.returncode == 0  # Ctrl-C (SIGINT) stops it cleanly
    assert "Traceback" not in program.output()


def test_a_taken_ipv6_loopback_stops_a_localhost_issuer(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as squatter:
        squatter.bind(("::1", port))
        squatter.listen()
        env = clean_env(OAUTH_DEMO_PASSWORD=TEST_PASSWORD)
        done = run(["oauth.py", "--data-dir", str(tmp_path / "d"), "--port", str(port)], env)
    assert done.returncode == 2
    assert done.stderr.startswith(f"oauth.py: cannot listen on [::1]:{port}: ")
    assert done.stderr.count("\n") == 1


def test_a_taken_port_stops_oauth_py_before_it_prints_a_password(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        env = clean_env()
        args = ["--host", "127.0.0.1", "--issuer", f"http://127.0.0.1:{port}", "--port", str(port)]
        done = run(["oauth.py", *args, "--data-dir", str(tmp_path / "d")], env)
    assert done.returncode == 2
    assert done.stdout == ""  # no banner, no password that belongs to another server
    assert done.stderr.startswith(f"oauth.py: cannot listen on 127.0.0.1:{port}: ")
    assert done.stderr.count("\n") == 1


def test_the_generated_demo_password_is_the_same_at_every_start(tmp_path: Path) -> None:
    port = free_port()
    shown = []
    for _ in range(2):
        with run_oauth_server(tmp_path, port=port, extra_env={"OAUTH_DEMO_PASSWORD": ""}) as s:
            match = re.search(r"password (\S+)  \(kept in (\S+);", s.program.output())
            assert match is not None, s.program.output()
            shown.append(match.group(1))
            assert Path(match.group(2)) == s.data_dir / "demo-password"
    assert shown[0] == shown[1]
