"""demo.py: both servers started in order and awaited, the client run, both always stopped."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from secure_mcp.demo import main as demo_module
from secure_mcp.demo.main import (
    OAUTH_HEALTH,
    WEATHER_HEALTH,
    Demo,
    DemoSettings,
    exit_on_hangup,
    http_probe,
    log_banner,
    log_tail,
    parent_death_signal,
    popen_launcher,
    port_in_use,
    settings_from,
)
from tests.support.anthropic_standin import AnthropicStandIn, serve_standin
from tests.support.processes import ROOT, free_port


class FakeProcess:
    """Stands in for Popen; becomes 'ready' on the probe after `ready_after` polls."""

    def __init__(self, exit_code: int | None = None, stubborn: bool = False) -> None:
        self.code = exit_code
        self.stubborn = stubborn
        self.signals: list[int] = []
        self.killed = False

    def poll(self) -> int | None:
        return self.code

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        if not self.stubborn:
            self.code = -sig

    def wait(self, timeout: float | None = None) -> int:
        if self.code is None:
            raise subprocess.TimeoutExpired("fake", timeout or 0)
        return self.code

    def kill(self) -> None:
        self.killed = True
        self.code = -9


class World:
    """Launcher, health probe and client, scripted; records what happened in order."""

    def __init__(self, tmp_path: Path, *, client_code: int = 0) -> None:
        self.events: list[str] = []
        self.healthy: set[str] = set()
        self.processes: dict[str, FakeProcess] = {}
        self.client_code = client_code
        self.client_error: BaseException | None = None
        self.output: list[str] = []
        self.settings = DemoSettings(
            root=Path("/repo"), python="py", log_dir=tmp_path, ready_timeout=5
        )

    def launch(self, argv: Sequence[str], log_path: Path) -> FakeProcess:
        name = Path(argv[1]).name
        self.events.append(f"launch {' '.join(argv)} > {log_path.name}")
        if not log_path.exists():
            log_path.write_text("demo login: demo / pw\nINFO:     Started server process\n")
        process = self.processes.setdefault(name, FakeProcess())
        url = OAUTH_HEALTH if name == "oauth.py" else WEATHER_HEALTH
        if process.code is None:
            self.healthy.add(url)
        return process

    def probe(self, url: str) -> bool:
        return url in self.healthy

    def run_client(self, argv: Sequence[str]) -> int:
        self.events.append(f"client {' '.join(argv)}")
        if self.client_error is not None:
            raise self.client_error
        return self.client_code

    def demo(self, settings: DemoSettings | None = None) -> Demo:
        return Demo(
            settings or self.settings,
            self.launch,
            self.run_client,
            probe=self.probe,
            busy=self.probe,
            write=self.output.append,
            sleep=lambda seconds: None,
            on_hangup=lambda: self.events.append("hangup handlers"),
        )


def test_starts_both_in_order_runs_the_client_and_stops_both(tmp_path: Path) -> None:
    world = World(tmp_path, client_code=3)
    settings = settings_from(["--nws-replay", "--paste", "--query", "alerts in CA"], {})
    settings = DemoSettings(
        nws_replay=settings.nws_replay,
        client_args=settings.client_args,
        root=Path("/repo"),
        python="py",
        log_dir=tmp_path,
    )
    assert world.demo(settings).run() == 3
    assert world.events == [
        "hangup handlers",
        "launch py /repo/oauth.py > oauth.log",
        "launch py /repo/weather.py --nws-replay > weather.log",
        "client --paste --query alerts in CA",
    ]
    assert world.processes["weather.py"].signals == [signal.SIGINT]
    assert world.processes["oauth.py"].signals == [signal.SIGINT]
    assert world.output[-2:] == ["Stopped weather.py.", "Stopped oauth.py."]
    assert world.output[1] == "demo login: demo / pw"  # oauth.py's banner, from its log


def test_live_nws_is_the_default() -> None:
    settings = settings_from([], {"XDG_STATE_HOME": "/var/tmp/state"})
    assert settings.log_dir == Path("/var/tmp/state/secure-mcp/demo")
    assert not settings.nws_replay
    assert "--nws-replay" not in settings.servers()[1].argv
    assert settings_from(["--offline"], {}).nws_replay


def test_ctrl_c_still_stops_both(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.client_error = KeyboardInterrupt()
    assert world.demo().run() == 130
    assert all(p.signals == [signal.SIGINT] for p in world.processes.values())


def test_a_server_that_dies_is_reported_with_its_log(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.processes["weather.py"] = FakeProcess(exit_code=2)
    (tmp_path / "weather.log").write_text("line\n" * 30 + "weather.py: cannot read credentials\n")
    assert world.demo().run() == 1
    assert not any(e.startswith("client") for e in world.events)
    message = world.output[-2]
    assert message.startswith("demo.py: weather.py exited with status 2:\n")
    assert message.endswith("weather.py: cannot read credentials")
    assert len(message.splitlines()) == 1 + 15
    assert world.processes["oauth.py"].signals == [signal.SIGINT]


def test_a_server_that_never_answers_times_out(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.launch = lambda argv, log_path: FakeProcess()  # type: ignore[method-assign]
    settings = DemoSettings(root=Path("/repo"), python="py", log_dir=tmp_path, ready_timeout=0.05)
    demo = world.demo(settings)
    demo.sleep = lambda seconds: time.sleep(0.01)
    assert demo.run() == 1
    assert world.output[-2] == f"demo.py: oauth.py did not answer {OAUTH_HEALTH} in time"


def test_running_servers_are_reused_and_left_alone_with_reuse(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.healthy = {OAUTH_HEALTH, WEATHER_HEALTH}
    settings = dataclasses.replace(world.settings, reuse=True)
    assert settings_from(["--reuse"], {}).reuse
    assert world.demo(settings).run() == 0
    assert world.events == ["hangup handlers", "client "]
    assert world.output == [
        f"oauth.py is already running ({OAUTH_HEALTH}); using it.",
        f"weather.py is already running ({WEATHER_HEALTH}); using it.",
    ]


def test_a_stubborn_server_is_killed(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.processes["oauth.py"] = FakeProcess(stubborn=True)
    world.demo().run()
    assert world.processes["oauth.py"].killed


def test_already_exited_servers_are_not_signalled(tmp_path: Path) -> None:
    world = World(tmp_path)
    demo = world.demo()
    gone = FakeProcess(exit_code=0)
    demo.started.append((world.settings.servers()[0], gone))
    demo.stop_all()
    assert gone.signals == []


def test_log_tail_and_banner_of_a_missing_log_are_empty(tmp_path: Path) -> None:
    assert log_tail(tmp_path / "none.log") == ""
    assert log_banner(tmp_path / "none.log") == ""


def test_http_probe_on_a_closed_port() -> None:
    assert not http_probe(f"http://127.0.0.1:{free_port()}/health")


def test_real_processes_start_in_their_own_session_and_stop(tmp_path: Path) -> None:
    launch = popen_launcher({"PATH": "/usr/bin:/bin"})
    sleeper = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
    process = launch(sleeper, tmp_path / "logs" / "sleeper.log")
    assert isinstance(process, subprocess.Popen)
    assert stat.S_IMODE((tmp_path / "logs").stat().st_mode) == 0o700
    try:
        assert process.poll() is None
        assert os.getsid(process.pid) != os.getsid(0)  # terminal Ctrl-C does not reach it
    finally:
        demo = Demo(DemoSettings(log_dir=tmp_path), launch, lambda argv: 0, write=lambda s: None)
        demo.on_hangup = lambda: None
        demo.started.append((DemoSettings().servers()[0], process))
        demo.stop_all()
    assert process.returncode is not None


def test_http_probe_accepts_any_answer() -> None:
    with serve_standin(AnthropicStandIn()) as url:
        assert http_probe(f"{url}/health")  # a 404 still means the server is up


def test_main_wires_the_real_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Demo] = []

    def fake_run(self: Demo) -> int:
        seen.append(self)
        return 7

    monkeypatch.setattr(Demo, "run", fake_run)
    assert demo_module.main(["--offline", "--paste"], {}, lambda argv: 0) == 7
    assert seen[0].settings.nws_replay
    assert seen[0].settings.client_args == ("--paste",)
    assert seen[0].probe is http_probe


def test_main_runs_client_py_in_this_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[Demo] = []
    monkeypatch.setattr(Demo, "run", lambda self: seen.append(self) or 0)
    assert demo_module.main([], {}) == 0
    with pytest.raises(SystemExit):
        seen[0].run_client(["--help"])
    assert capsys.readouterr().out.startswith("usage: client.py")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_hangup_and_terminate_become_an_interrupt(sig: signal.Signals) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        exit_on_hangup()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), sig)  # the handler runs as the call returns
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def test_no_handlers_off_the_main_thread() -> None:
    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=exit_on_hangup)
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_closed_terminal_does_not_stop_the_stopping(tmp_path: Path) -> None:
    world = World(tmp_path)
    demo = world.demo()
    demo.started = [(s, FakeProcess()) for s in world.settings.servers()]

    def closed_terminal(text: str) -> None:
        raise OSError(5, "Input/output error")

    demo.write = closed_terminal
    processes = [p for _, p in demo.started]
    demo.stop_all()
    assert all(p.signals == [signal.SIGINT] for p in processes)


def test_a_busy_port_stops_the_demo_naming_it_unless_reuse(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.healthy = {OAUTH_HEALTH}  # anything could be answering there
    assert world.demo().run() == 1
    assert world.events == ["hangup handlers"]  # nothing started, no client
    assert world.output == [
        "demo.py: port 8003 is already in use, so oauth.py cannot start there; stop the program "
        "using it, or pass --reuse to use a oauth.py already running."
    ]


def test_port_in_use_sees_a_listening_socket() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert port_in_use(f"http://127.0.0.1:{sock.getsockname()[1]}/health")
    assert not port_in_use(f"http://127.0.0.1:{free_port()}/health")
    assert not port_in_use("http://no-such-host.invalid:8000/health")


def test_logs_are_created_private_even_over_an_open_one(tmp_path: Path) -> None:
    launch = popen_launcher({"PATH": "/usr/bin:/bin"})
    log = tmp_path / "logs" / "oauth.log"
    log.parent.mkdir(mode=0o700)
    log.write_text("old, readable by everyone\n")
    log.chmod(0o644)
    previous = os.umask(0o022)
    try:
        process = launch([sys.executable, "-c", "print('demo login: demo / pw')"], log)
        assert isinstance(process, subprocess.Popen)
        process.wait(timeout=30)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert log.read_text() == "demo login: demo / pw\n"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_servers_stop_when_the_demo_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves no `finally`: the kernel's parent-death signal stops the servers."""
    pid_file = tmp_path / "server.pid"
    server = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    )
    log = tmp_path / "server.log"
    demo_like = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from secure_mcp.demo.main import popen_launcher\n"
        f"popen_launcher({{}})([sys.executable, '-c', {server!r}], Path({str(log)!r}))\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", demo_like], cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the server never started"
            time.sleep(0.05)
        server_pid = int(pid_file.read_text())
        parent.kill()  # SIGKILL: demo.py gets no chance to stop anything
        parent.wait(timeout=10)
        while _alive(server_pid):
            assert time.monotonic() < deadline + 15, "the server outlived demo.py"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait(timeout=10)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped has stopped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_the_parent_death_signal_is_armed_in_the_child() -> None:
    calls: list[tuple[int, ...]] = []
    killed: list[tuple[int, int]] = []
    assert parent_death_signal("darwin") is None
    arm = parent_death_signal(
        "linux",
        prctl=lambda *args: calls.append(args) or 0,
        getppid=os.getpid,  # as the child sees it: the demo's pid
        kill=lambda pid, sig: killed.append((pid, sig)),
    )
    assert arm is not None
    arm()
    assert calls == [(1, signal.SIGTERM, 0, 0, 0)]  # PR_SET_PDEATHSIG
    assert killed == []
    orphaned = parent_death_signal(
        "linux",
        prctl=lambda *args: 0,
        getppid=lambda: 1,
        kill=lambda pid, sig: killed.append((pid, sig)),
    )
    assert orphaned is not None
    orphaned()  # the demo died before the signal was armed: stop at once
    assert killed == [(os.getpid(), signal.SIGTERM)]


REPLAY_LOG = (
    "weather: MCP endpoint http://127.0.0.1:8000/mcp (listening on 127.0.0.1:8000)\n"
    "weather: introspection cache 30s\n"
    "weather: " + "!" * 60 + "\n"
    "weather: NWS REPLAY MODE: serving recorded National Weather Service responses\n"
    "weather: " + "!" * 60 + "\n"
    "INFO:     Started server process\n"
)


@pytest.mark.parametrize("replay", [True, False])
def test_the_replay_banner_is_shown_where_the_answers_are_read(
    tmp_path: Path, replay: bool
) -> None:
    (tmp_path / "weather.log").write_text(REPLAY_LOG if replay else "weather: live\nINFO: x\n")
    world = World(tmp_path)
    settings = DemoSettings(nws_replay=replay, root=Path("/repo"), python="py", log_dir=tmp_path)
    assert world.demo(settings).run() == 0
    shown = "\n".join(world.output)
    assert ("NWS REPLAY MODE" in shown) is replay
    assert "introspection cache" not in shown  # only the warning block, not the whole banner
    if replay:
        assert "\n".join(REPLAY_LOG.splitlines()[2:5]) in world.output
