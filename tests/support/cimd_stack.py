"""oauth.py trusting a client ID metadata document served over https on loopback, and weather.py."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2

from secure_mcp.common.resource_credentials import load_all
from tests.support.cimd_server import (
    LoopbackDocumentServer,
    document,
    loopback_document_server,
    make_certificates,
    server_tls,
)
from tests.support.flows import Stack, run_stack

CLIENT_NAME = "Weather CLI (metadata document)"


DOCUMENT_PATH = "/clients/weather-cli.json"


def quiet(line: str) -> None:
    """Discard what the client writes."""


@dataclass
class CimdStack:
    """The document server, oauth.py (trusting its CA) and weather.py."""

    docs: LoopbackDocumentServer
    url: str  # the client_id: the document's https URL
    stack: Stack


@contextlib.contextmanager
def run_cimd_stack(tmp_path: Path) -> Iterator[CimdStack]:
    """Publish the document over https on 127.0.0.1, then start oauth.py and weather.py."""
    certs = make_certificates(str(tmp_path), "localhost", ("127.0.0.1",))
    with loopback_document_server(server_tls(certs)) as docs:
        url = docs.url(DOCUMENT_PATH)
        docs.publish(
            DOCUMENT_PATH,
            document(url, client_name=CLIENT_NAME, redirect_uris=["http://127.0.0.1/callback"]),
        )
        oauth_env = {"OAUTH_CIMD_ALLOW_INSECURE": "1", "OAUTH_CIMD_CA_FILE": certs.ca_file}
        with run_stack(tmp_path, oauth_env=oauth_env) as stack:
            yield CimdStack(docs, url, stack)


async def introspect(stack: Stack, token: str) -> dict[str, object]:
    """Ask oauth.py about `token` as the weather resource server (RFC 7662)."""
    creds = load_all(stack.oauth.data_dir)[stack.weather.url]
    async with httpx2.AsyncClient(timeout=10) as http:
        answer = await http.post(
            f"{stack.oauth.issuer}/introspect",
            data={"token": token},
            auth=(creds.client_id, creds.client_secret),
        )
    result: dict[str, object] = answer.json()
    return result
