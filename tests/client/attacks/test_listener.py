"""Every sign-in of a session listens on 127.0.0.1 only, on the port its redirect URI names."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.auth.loopback import LoopbackListener
from tests.support.client_fakes import RS_ORIGIN, FakeAuthServer
from tests.support.hostile import HostileMcp
from tests.support.hostile_world import World

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _hex_address(text: str) -> str:
    address, port = text.split(":")
    raw = bytes.fromhex(address)
    if len(raw) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, raw[::-1])}:{int(port, 16)}"
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return f"[{socket.inet_ntop(socket.AF_INET6, words)}]:{int(port, 16)}"


def listening() -> set[str]:
    """The addresses this process listens on (from /proc: what the kernel says, not the code)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with_link = os.path.join("/proc/self/fd", fd)
        try:
            target = os.readlink(with_link)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as handle:
            for row in list(handle)[1:]:
                fields = row.split()
                if fields[3] == "0A" and fields[9] in inodes:  # LISTEN, one of ours
                    found.add(_hex_address(fields[1]))
    return found


def _port(url: str) -> int:
    redirect = parse_qs(urlsplit(url).query)["redirect_uri"][0]
    return int(urlsplit(redirect).port or 0)


class Watching:
    """The browser, noting what the process listens on at the moment it is sent off."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.seen: list[tuple[int, set[str]]] = []
        self._open = world.browser.open
        world.browser.open = self.open  # type: ignore[method-assign]

    def open(self, url: str) -> bool:
        self.seen.append((_port(url), listening()))
        return self._open(url)


def _world(tmp_path: Path) -> World:
    fake_as = FakeAuthServer()
    world = World(tmp_path / "state", fake_as=fake_as)
    world.mcp = HostileMcp(auth=fake_as)
    world.router.transports[RS_ORIGIN] = world.mcp  # type: ignore[assignment]
    return world


def test_repeated_sign_ins_listen_on_loopback_at_the_redirect_port(tmp_path: Path) -> None:
    world = _world(tmp_path)
    watching = Watching(world)
    assert world.run(lines=("/login", "/login")) == 0
    assert len(watching.seen) == 3
    port = watching.seen[0][0]
    for redirect_port, sockets in watching.seen:
        assert redirect_port == port
        assert f"127.0.0.1:{port}" in sockets
        assert not any(s.startswith(("0.0.0.0:", "[::]:")) for s in sockets)


def test_a_port_taken_between_sign_ins_is_one_line_and_never_all_interfaces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _world(tmp_path)
    watching = Watching(world)
    thief = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
    script = iter(["take", "/login", "free", "/login"])
    after_failure: list[set[str]] = []

    async def read_line(prompt: str) -> str:
        for step in script:
            if step == "take":
                thief.bind(("127.0.0.1", watching.seen[0][0]))
                thief.listen()
            elif step == "free":
                after_failure.append(listening() - {f"127.0.0.1:{watching.seen[0][0]}"})
                thief.close()
            else:
                return step
        raise EOFError

    try:
        assert world.run(read_line=read_line) == 0
    finally:
        thief.close()
    port = watching.seen[0][0]
    out, err = capsys.readouterr()
    assert f"Error: Cannot listen for the sign-in on 127.0.0.1:{port} again" in out
    assert "Traceback" not in out + err
    assert after_failure == [set()]  # the failed re-bind left nothing listening anywhere
    assert len(watching.seen) == 2  # the third sign-in, once the port was free again
    assert f"127.0.0.1:{port}" in watching.seen[1][1]


async def test_after_a_failed_rebind_the_listener_never_listens_elsewhere() -> None:
    listener = LoopbackListener()
    port = listener.port
    await listener.start("first")
    await listener.stop()
    thief = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    thief.bind(("127.0.0.1", port))
    thief.listen()
    try:
        with pytest.raises((ClientConnectError, OSError)):
            await listener.start("second")
    finally:
        thief.close()
    await listener.start("third")
    try:
        assert listening() == {f"127.0.0.1:{port}"}
    finally:
        listener.close()
    assert listening() == set()
