"""In-process fixtures: a fake RFC 7662 authorization server and the weather app over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from secure_mcp.weather.app import Seams, build_app
from tests.support.weather_app import FakeIntrospectionServer, make_settings, serving


@pytest.fixture
def auth_server() -> FakeIntrospectionServer:
    """A fresh fake authorization server."""
    return FakeIntrospectionServer()


@pytest.fixture
async def weather(auth_server: FakeIntrospectionServer) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client to the weather app (lifespan running), auth against `auth_server`."""
    app = build_app(make_settings(), seams=Seams(introspection_transport=auth_server.transport()))
    async with serving(app) as client:
        yield client
