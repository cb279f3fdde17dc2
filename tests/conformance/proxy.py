"""A loopback proxy that signs every request it forwards to weather.py with a DPoP-bound token.

The conformance suite's `server` command has no way to send a token, so it talks to this proxy,
which adds `Authorization: DPoP <token>` and a fresh proof for each request (weather.py runs with
--require-dpop: a bearer token would be refused). `Host` and `Origin` pass unchanged, except the
proxy's own, which become weather.py's: a hostile Host from the suite (DNS rebinding) still
reaches weather.py as such. Bodies and answers stream both ways (SSE included).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx2
import uvicorn
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from tests.support.dpop import proof
from tests.support.processes import free_port

HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}
SIGNED = {"authorization", "dpop"}


def proxy_app(
    upstream: str, own: str, token: str, key: ECKey, http: httpx2.AsyncClient
) -> Starlette:
    """The proxy to `upstream` (http://host:port), which answers as `own` (host:port)."""
    target = httpx2.URL(upstream)
    upstream_host = target.netloc.decode("ascii")

    async def forward(request: Request) -> StreamingResponse:
        host = request.headers.get("host", own)
        host = upstream_host if host == own else host
        headers = [
            (k, v)
            for k, v in request.headers.items()
            if k.lower() not in HOP_BY_HOP | SIGNED | {"origin"}
        ]
        origin = request.headers.get("origin")
        if origin is not None:
            headers.append(("origin", origin.replace(f"//{own}", f"//{upstream_host}")))
        url = f"http://{host}{request.url.path}"
        headers += [
            ("host", host),
            ("authorization", f"DPoP {token}"),
            ("dpop", proof(key, request.method, url, token=token)),
        ]
        outgoing = http.build_request(
            request.method,
            target.copy_with(path=request.url.path, query=request.url.query.encode()),
            headers=headers,
            content=await request.body(),
        )
        answer = await http.send(outgoing, stream=True)
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            headers=kept,
            background=BackgroundTask(answer.aclose),
        )

    methods = ["GET", "POST", "DELETE", "PUT", "OPTIONS", "HEAD", "PATCH"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)])


@contextlib.asynccontextmanager
async def signing_proxy(upstream: str, token: str, key: ECKey) -> AsyncIterator[str]:
    """Serve the proxy on 127.0.0.1 in this event loop; yield its base URL."""
    port = free_port()
    own = f"127.0.0.1:{port}"
    http = httpx2.AsyncClient(timeout=60)
    app = proxy_app(upstream, own, token, key, http)
    # h11, which drops the whitespace around header values as RFC 9110 5.5 asks (httptools keeps
    # the trailing, which httpx2 would then refuse to send on)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", http="h11")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
        if task.done():
            await task
    try:
        yield f"http://{own}"
    finally:
        server.should_exit = True
        await task
        await http.aclose()
