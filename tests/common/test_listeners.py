"""A localhost server holds both loopback addresses, or does not start."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from secure_mcp.common.listeners import ListenError, host_listener, loopback_listeners
from tests.support.processes import free_port


def _taken(family: int, address: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((address, port))
    sock.listen()
    return sock


def _bindable(family: int, address: str, port: int) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def test_both_loopback_addresses_are_held() -> None:
    port = free_port()
    listeners = loopback_listeners(port)
    try:
        assert listeners.where == f"127.0.0.1:{port} and [::1]:{port}"
        for sock in listeners.sockets:
            sock.listen()
        assert not _bindable(socket.AF_INET6, "::1", port)  # no one can take the other family
        assert not _bindable(socket.AF_INET, "127.0.0.1", port)
        v6 = next(s for s in listeners.sockets if s.family == socket.AF_INET6)
        assert v6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    finally:
        listeners.close()


def test_port_zero_gives_both_the_same_port() -> None:
    listeners = loopback_listeners(0)
    try:
        ports = {sock.getsockname()[1] for sock in listeners.sockets}
        assert len(ports) == 1
    finally:
        listeners.close()


@pytest.mark.parametrize(
    ("family", "address", "shown"),
    [(socket.AF_INET6, "::1", "[::1]"), (socket.AF_INET, "127.0.0.1", "127.0.0.1")],
    ids=["ipv6-taken", "ipv4-taken"],
)
def test_a_taken_address_stops_the_start(family: int, address: str, shown: str) -> None:
    port = free_port()
    squatter = _taken(family, address, port)
    try:
        with pytest.raises(ListenError) as caught:
            loopback_listeners(port)
        message = str(caught.value)
        assert message.startswith(f"cannot listen on {shown}:{port}: ")
        assert "Another program holds it" in message
        assert "\n" not in message
        if family == socket.AF_INET6:  # the IPv4 socket bound first was closed again
            assert _bindable(socket.AF_INET, "127.0.0.1", port)
    finally:
        squatter.close()


def test_a_machine_without_ipv6_listens_on_ipv4_and_says_so() -> None:
    def no_ipv6(family: int) -> socket.socket:
        if family == socket.AF_INET6:
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        return socket.socket(family, socket.SOCK_STREAM)

    port = free_port()
    listeners = loopback_listeners(port, factory=no_ipv6)
    try:
        assert listeners.where == f"127.0.0.1:{port} (this machine has no IPv6 loopback)"
        assert len(listeners.sockets) == 1
    finally:
        listeners.close()


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
def test_another_host_is_bound_before_anything_is_printed(family: int, host: str) -> None:
    port = free_port()
    listeners = host_listener(host, port)
    try:
        assert listeners.where == (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        assert not _bindable(family, host, port)
    finally:
        listeners.close()
    with _taken(family, host, port), pytest.raises(ListenError) as caught:
        host_listener(host, port)
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    assert str(caught.value) == (
        f"cannot listen on {shown}: Address already in use. Another program holds it: stop it, "
        "or choose another --port"
    )


@pytest.mark.parametrize("bound", ["loopback", "host"])
async def test_accepted_connections_send_without_delay(bound: str) -> None:
    """TCP_NODELAY on every accepted connection: asyncio sets it only when the listening
    socket's protocol is TCP; without it each answer after the first on a kept-alive connection
    waited about 40 ms (Nagle against delayed ACKs)."""
    port = free_port()
    listeners = (
        loopback_listeners(port) if bound == "loopback" else host_listener("127.0.0.1", port)
    )
    accepted: list[int] = []

    def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        accepted.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    servers = [await asyncio.start_server(serve, sock=sock) for sock in listeners.sockets]
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(100):
            if accepted:
                break
            await asyncio.sleep(0.01)
        writer.close()
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
    assert accepted == [1]
