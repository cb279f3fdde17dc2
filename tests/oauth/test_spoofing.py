"""Consent-page spoofing: invisible and text-direction characters, look-alike host names."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from secure_mcp.oauth.display import invisible_characters, is_invisible, shown_host, shown_text
from secure_mcp.oauth.models import Client
from secure_mcp.oauth.storage import Database
from tests.support.oauth_harness import REDIRECT, Flow, Harness, consent_page, login_page, pkce

CYRILLIC_APPLE = "\u0430pple.example"  # the first letter is Cyrillic: looks like apple.example
CYRILLIC_APPLE_ACE = CYRILLIC_APPLE.encode("idna").decode()

SPOOFED_NAMES = [
    pytest.param("Good\u202eevil", "U+202E", id="right-to-left-override"),
    pytest.param("Good\u2067evil\u2069", "U+2067", id="right-to-left-isolate"),
    pytest.param("Git\u200bHub", "U+200B", id="zero-width-space"),
    pytest.param("Git\u200dHub", "U+200D", id="zero-width-joiner"),
    pytest.param("Goo\u00adgle", "U+00AD", id="soft-hyphen"),
    pytest.param("Claude\u3164Code", "U+3164", id="hangul-filler"),
    pytest.param("Claude\u00a0\u00a0\u00a0(official)", "U+00A0", id="no-break-spaces"),
    pytest.param("Line\nbreak", "U+000A", id="newline"),
    pytest.param("Tag\U000e0041", "U+E0041", id="tag-character"),
    pytest.param("Var\ufe0fiation", "U+FE0F", id="variation-selector"),
]


@pytest.mark.parametrize(("name", "code"), SPOOFED_NAMES)
async def test_registration_refuses_invisible_characters(
    oauth: Harness, name: str, code: str
) -> None:
    response = await oauth.http.post(
        "/register", json={"redirect_uris": [REDIRECT], "client_name": name}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_client_metadata"
    assert body["error_description"].startswith("client_name: ")
    assert (
        f"invisible or text-direction characters are not allowed ({code}"
        in (body["error_description"])
    )


@pytest.mark.parametrize(
    "field", ["software_id", "software_version", "client_uri", "scope", "contacts"]
)
async def test_every_displayed_field_is_checked(oauth: Harness, field: str) -> None:
    value = "https://a.example/\u202e" if field == "client_uri" else "weather:read\u200b"
    metadata = {"redirect_uris": [REDIRECT], field: [value] if field == "contacts" else value}
    response = await oauth.http.post("/register", json=metadata)
    assert response.json()["error"] == "invalid_client_metadata", field
    assert response.json()["error_description"].startswith(f"{field}: ")


async def test_names_in_other_scripts_are_fine(oauth: Harness) -> None:
    for name in ("Météo", "天气助手", "Wetter \u2013 App", "\u0627\u0644\u0637\u0642\u0633"):
        assert (await oauth.register(client_name=name))["client_name"] == name


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        pytest.param(f"https://{CYRILLIC_APPLE}/cb", "must be ASCII", id="homograph-host"),
        pytest.param("https://b\u00fccher.example/cb", "must be ASCII", id="idn-host"),
        pytest.param("https://%D0%B0pple.example/cb", "percent-encoded", id="escaped-host"),
        pytest.param("https://app.example/\u202ebc", "must be ASCII", id="bidi-in-path"),
    ],
)
async def test_registration_refuses_look_alike_redirect_hosts(
    oauth: Harness, uri: str, message: str
) -> None:
    response = await oauth.http.post("/register", json={"redirect_uris": [uri]})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_redirect_uri"
    assert message in response.json()["error_description"]


async def test_an_xn_host_is_shown_as_registered(oauth: Harness) -> None:
    uri = f"https://{CYRILLIC_APPLE_ACE}/cb"
    flow = Flow(await oauth.register(redirect_uris=[uri]), *pkce(), redirect_uri=uri)
    page = await consent_page(oauth, flow)
    assert f"<code>{CYRILLIC_APPLE_ACE}</code>" in page.text


async def test_rows_stored_before_the_check_are_cleaned_when_shown(oauth: Harness) -> None:
    uri = f"https://{CYRILLIC_APPLE}:8443/cb"
    client = await oauth.register(redirect_uris=["https://placeholder.example/cb"])
    db = Database(oauth.settings.data_dir)
    async with db.write() as session:  # as an earlier version could have stored them
        await session.execute(
            update(Client)
            .where(Client.client_id == client["client_id"])
            .values(client_name="Good\u202eevil\u200b", redirect_uris=[uri])
        )
    await db.close()
    flow = Flow(client, *pkce(), redirect_uri=uri)
    login = await login_page(oauth, flow)
    assert "Goodevil" in login.text
    page = await consent_page(oauth, flow)
    assert "\u202e" not in page.text
    assert "\u200b" not in page.text
    assert page.text.count("Goodevil") == 2
    assert f"<code>{CYRILLIC_APPLE_ACE}:8443</code>" in page.text
    assert CYRILLIC_APPLE not in page.text


def test_what_counts_as_invisible() -> None:
    assert [is_invisible(ch) for ch in "a \u00e9\u0627"] == [False] * 4
    assert all(is_invisible(ch) for ch in "\u202e\u200b\u2028\ue000\u034f\u2800\u3000\t")
    assert invisible_characters("a\u202eb\u202ec\u200b") == ["U+202E", "U+200B"]
    assert shown_text("\u202e\u200b") == ""


@pytest.mark.parametrize(
    ("netloc", "shown"),
    [
        ("app.example:8443", "app.example:8443"),
        ("[::1]:8000", "[::1]:8000"),
        (CYRILLIC_APPLE, CYRILLIC_APPLE_ACE),
        ("b\u00fccher.example:80", "xn--bcher-kva.example:80"),
        ("\u00e9" * 64 + ".example", "\\xe9" * 64 + ".example"),  # no IDNA form: escaped
    ],
)
def test_hosts_are_shown_in_ascii(netloc: str, shown: str) -> None:
    assert shown_host(netloc) == shown
