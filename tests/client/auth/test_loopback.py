"""The RFC 8252 loopback listener and its "you can close this tab" page."""

from __future__ import annotations

import asyncio
import socket

import httpx2
import pytest

from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.auth.loopback import LoopbackListener, render_page, result_from_query


async def test_listener_catches_one_callback_and_shows_the_close_page() -> None:
    listener = LoopbackListener()
    assert listener.redirect_uri == f"http://127.0.0.1:{listener.port}/callback"
    await listener.start()
    waiting = asyncio.create_task(listener.wait(5))
    async with httpx2.AsyncClient() as client:
        page = await client.get(f"{listener.redirect_uri}?code=abc&state=xyz&iss=http%3A%2F%2Fas")
    result = await waiting
    assert (result.code, result.state, result.iss) == ("abc", "xyz", "http://as")
    assert page.status_code == 200
    assert "You can close this tab" in page.text
    assert page.headers["cache-control"] == "no-store"
    listener.close()


async def test_listener_answers_other_paths_and_late_callbacks() -> None:
    listener = LoopbackListener()
    await listener.start()
    async with httpx2.AsyncClient() as client:
        assert (
            await client.get(f"http://127.0.0.1:{listener.port}/favicon.ico")
        ).status_code == 404
        assert (await client.post(listener.redirect_uri)).status_code == 404
        assert (await client.get(f"{listener.redirect_uri}?code=a&state=s")).status_code == 200
        second = await client.get(f"{listener.redirect_uri}?code=b&state=s")
    assert second.status_code == 409
    assert (await listener.wait(1)).code == "a"
    listener.close()


async def test_listener_reports_an_error_and_escapes_it() -> None:
    listener = LoopbackListener()
    await listener.start()
    waiting = asyncio.create_task(listener.wait(5))
    async with httpx2.AsyncClient() as client:
        page = await client.get(
            listener.redirect_uri,
            params={"error": "access_denied", "error_description": "<script>x</script>"},
        )
    with pytest.raises(ClientConnectError, match="refused: access_denied") as caught:
        await waiting
    assert caught.value.error == "access_denied"
    assert page.status_code == 400
    assert "<script>" not in page.text
    assert "&lt;script&gt;" in page.text
    listener.close()


async def test_listener_times_out_with_a_hint() -> None:
    listener = LoopbackListener()
    await listener.start()
    with pytest.raises(ClientConnectError, match="--paste"):
        await listener.wait(0.05)
    listener.close()


async def test_listener_restarts_on_the_same_port() -> None:
    listener = LoopbackListener()
    port = listener.port
    await listener.start()
    await listener.stop()
    await listener.start()
    assert listener.port == port
    async with httpx2.AsyncClient() as client:
        await client.get(f"{listener.redirect_uri}?code=again&state=s")
    assert (await listener.wait(1)).code == "again"
    listener.close()


async def test_wait_before_start_is_a_bug() -> None:
    listener = LoopbackListener()
    with pytest.raises(RuntimeError):
        await listener.wait(1)
    listener.close()


async def test_garbage_and_oversized_requests_are_dropped() -> None:
    listener = LoopbackListener()
    await listener.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(b"GET /callback?" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n")
    await writer.drain()
    assert await reader.read() == b""
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(b"GET /call")
    writer.write_eof()
    assert await reader.read() == b""
    writer.close()
    listener.close()


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param("code=c&state=forged", id="code-wrong-state"),
        pytest.param("code=c", id="code-no-state"),
        pytest.param("error=access_denied&state=forged", id="error-wrong-state"),
        pytest.param("error=access_denied", id="error-no-state"),
    ],
)
async def test_an_answer_for_another_sign_in_is_refused_and_ignored(forged: str) -> None:
    # RFC 6749 10.12: any local page can hit the callback; only this sign-in's state counts.
    listener = LoopbackListener()
    await listener.start(state="expected")
    waiting = asyncio.create_task(listener.wait(5))
    async with httpx2.AsyncClient() as client:
        page = await client.get(f"{listener.redirect_uri}?{forged}")
        assert page.status_code == 400
        assert "Not this sign-in" in page.text
        assert not waiting.done()
        real = await client.get(f"{listener.redirect_uri}?code=real&state=expected")
    assert real.status_code == 200
    assert (await waiting).code == "real"
    listener.close()


async def test_an_error_for_this_sign_in_aborts_it() -> None:
    listener = LoopbackListener()
    await listener.start(state="expected")
    waiting = asyncio.create_task(listener.wait(5))
    async with httpx2.AsyncClient() as client:
        page = await client.get(f"{listener.redirect_uri}?error=access_denied&state=expected")
    with pytest.raises(ClientConnectError, match="refused: access_denied") as caught:
        await waiting
    assert caught.value.error == "access_denied"
    assert page.status_code == 400
    assert "Sign-in failed" in page.text
    listener.close()


def test_result_needs_a_code() -> None:
    with pytest.raises(ClientConnectError, match="no code"):
        result_from_query("state=abc")


def test_error_without_description() -> None:
    with pytest.raises(ClientConnectError) as caught:
        result_from_query("error=server_error")
    assert str(caught.value) == "The authorization server refused: server_error"


def test_page_escapes_everything() -> None:
    assert b"&lt;b&gt;" in render_page("<b>", "x")


@pytest.mark.parametrize("how", ["stop", "close"])
async def test_idle_connections_are_closed_when_the_listener_stops(how: str) -> None:
    listener = LoopbackListener()
    await listener.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)  # a preconnect
    for _ in range(50):  # until the listener has accepted it
        if listener._writers:
            break
        await asyncio.sleep(0.01)
    assert len(listener._writers) == 1
    if how == "stop":
        await listener.stop()
    else:
        listener.close()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # the listener hung up
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0)
    assert not listener._writers
    listener.close()


async def test_a_socket_bound_elsewhere_is_never_listened_on() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.2", 0))
    listener = LoopbackListener(sock)
    with pytest.raises(ClientConnectError, match="not bound to its redirect URI"):
        await listener.start("s")
    assert sock.fileno() == -1  # closed, not listening
    listener.close()
