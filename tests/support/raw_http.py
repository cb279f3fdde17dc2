"""Raw HTTP/1.1 sockets for the slow-client tests: open from a chosen loopback source, read back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass


@dataclass
class RawConnection:
    """One client socket with whatever it has sent so far."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def closed_by_server(self) -> bool:
        """True once the server has closed its side (EOF seen by the event loop)."""
        return self.reader.at_eof()

    async def send(self, data: bytes) -> None:
        """Write `data` (the connection may have been closed by the server meanwhile)."""
        self.writer.write(data)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def answer(self, seconds: float) -> bytes:
        """Everything the server sends until it closes, or TimeoutError after `seconds`."""
        async with asyncio.timeout(seconds):
            try:
                return await self.reader.read()
            except ConnectionResetError:
                return b""

    def abort(self) -> None:
        """Close abruptly, as a client that hangs up."""
        self.writer.transport.abort()


async def open_raw(port: int, source: str, data: bytes = b"") -> RawConnection:
    """A TCP connection to 127.0.0.1:`port` from address `source` (any 127.x address works).

    The caller closes it (`abort`); `raw` and `many_raw` do so at block end.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    connection = RawConnection(reader, writer)
    if data:
        await connection.send(data)
    return connection


@contextlib.asynccontextmanager
async def raw(port: int, source: str, data: bytes = b"") -> AsyncIterator[RawConnection]:
    """One connection that sent `data`, closed at block end."""
    connection = await open_raw(port, source, data)
    try:
        yield connection
    finally:
        connection.abort()


@contextlib.asynccontextmanager
async def many_raw(
    port: int, source: str, data: bytes, count: int
) -> AsyncIterator[Sequence[RawConnection]]:
    """`count` connections that each sent `data`; all closed at block end."""
    opened: list[RawConnection] = []
    try:
        for _ in range(count):
            opened.append(await open_raw(port, source, data))
        yield opened
    finally:
        for connection in opened:
            connection.abort()


def request_head(method: str, path: str, port: int, *headers: str) -> bytes:
    """A complete request head for 127.0.0.1:`port` with extra `Name: value` header lines."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")
