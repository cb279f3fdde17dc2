"""`--paste` parsing and the browser opener's rules."""

from __future__ import annotations

import asyncio
import threading
import webbrowser

import pytest

from secure_mcp.client.auth.browser import open_in_browser
from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.auth.paste import parse_pasted, read_pasted


def test_whole_redirect_url_keeps_its_own_iss() -> None:
    result = parse_pasted(
        "  http://127.0.0.1:5000/callback?code=c1&state=expected&iss=http%3A%2F%2Fas \n",
        state="expected",
        issuer="http://issuer",
    )
    assert (result.code, result.state, result.iss) == ("c1", "expected", "http://as")


def test_bare_code_is_accepted() -> None:
    result = parse_pasted("abc-123_XYZ", state="expected", issuer="http://issuer")
    assert (result.code, result.state, result.iss) == ("abc-123_XYZ", "expected", "http://issuer")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "access_denied"),
        ("two words", "invalid_request"),
        ("code=abc", "invalid_request"),
        ("http://127.0.0.1/callback?error=access_denied&state=s", "access_denied"),
        ("http://127.0.0.1/callback?state=s", "invalid_request"),
        ("http://127.0.0.1/callback?code=c&state=other", "invalid_request"),
        ("http://127.0.0.1/callback?code=c", "invalid_request"),
        ("http://127.0.0.1/callback?error=access_denied&state=other", "invalid_request"),
        ("http://127.0.0.1/callback?error=access_denied", "invalid_request"),
    ],
    ids=[
        "empty",
        "spaces",
        "query-fragment",
        "error-url",
        "url-without-code",
        "url-wrong-state",
        "url-without-state",
        "error-wrong-state",
        "error-without-state",
    ],
)
def test_bad_paste_is_refused(text: str, error: str) -> None:
    with pytest.raises(ClientConnectError) as caught:
        parse_pasted(text, state="s", issuer=None)
    assert caught.value.error == error


async def test_end_of_input_cancels() -> None:
    def eof(prompt: str) -> str:
        raise EOFError

    with pytest.raises(ClientConnectError, match="cancelled"):
        await read_pasted(eof, state="s", issuer=None)


async def test_read_pasted_reads_one_line() -> None:
    prompts: list[str] = []

    def typed(prompt: str) -> str:
        prompts.append(prompt)
        return "the-code"

    assert (await read_pasted(typed, state="s", issuer=None)).code == "the-code"
    assert prompts == [""]


async def test_cancelled_read_does_not_wait_for_the_line() -> None:
    release = threading.Event()

    def slow(prompt: str) -> str:
        release.wait(5)
        return "late"

    reading = asyncio.create_task(read_pasted(slow, state="s", issuer=None))
    await asyncio.sleep(0.01)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    release.set()  # the daemon thread finishes; its late answer is dropped
    await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "file:///etc/passwd", "data:text/html,x", "ftp://x/y"]
)
def test_only_http_urls_are_opened(url: str) -> None:
    opened: list[str] = []
    assert not open_in_browser(url, lambda u: opened.append(u) is None)
    assert opened == []


def test_http_urls_are_opened() -> None:
    opened: list[str] = []
    assert open_in_browser("https://as.example/authorize?x=1", lambda u: opened.append(u) is None)
    assert opened == ["https://as.example/authorize?x=1"]


def test_no_browser_is_false() -> None:
    def broken(url: str) -> bool:
        raise webbrowser.Error("no runnable browser")

    assert not open_in_browser("http://127.0.0.1/", broken)
    assert not open_in_browser("http://127.0.0.1/", lambda url: False)


def test_pasted_url_from_another_sign_in_says_so() -> None:
    with pytest.raises(ClientConnectError, match="not from this sign-in"):
        parse_pasted("http://127.0.0.1/callback?error=x&state=old", state="new", issuer=None)


def test_pasted_url_on_another_servers_path_is_refused() -> None:
    """RFC 9700 4.4.2.2: the answer must arrive on this sign-in's own redirect URI."""
    pasted = "http://127.0.0.1:5000/callback/aaaa?code=c&state=s"
    with pytest.raises(ClientConnectError, match=r"its path is not /callback/bbbb"):
        parse_pasted(pasted, state="s", issuer=None, path="/callback/bbbb")
    assert parse_pasted(pasted, state="s", issuer=None, path="/callback/aaaa").code == "c"
