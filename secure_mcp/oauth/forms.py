"""Reading request parameters strictly: size cap, no duplicates (RFC 6749 3.1, 3.2)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl

from starlette.requests import Request

from secure_mcp.oauth.errors import InvalidRequest

FORM_TYPE = "application/x-www-form-urlencoded"


class BodyTooLarge(Exception):
    """The request body is over the configured limit."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or BodyTooLarge once more than `limit` bytes arrive."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def single_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Parameters as a dict; a repeated parameter is InvalidRequest (RFC 6749 3.1)."""
    result: dict[str, str] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidRequest(f"parameter {key} is repeated")
        result[key] = value
    return result


def parse_query(query: str) -> dict[str, str]:
    """A URL-encoded query string as single values; undecodable input is InvalidRequest."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, errors="strict", max_num_fields=100)
    except ValueError as exc:
        raise InvalidRequest(f"malformed parameters: {exc}") from None
    return single_values((k, v) for k, v in pairs if v != "")


async def read_form(request: Request, limit: int) -> dict[str, str]:
    """A form-encoded POST body as single values (empty values count as absent)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise InvalidRequest(f"the body must be {FORM_TYPE}")
    try:
        body = await read_body(request, limit)
        return parse_query(body.decode("utf-8"))
    except BodyTooLarge:
        raise InvalidRequest("the request body is too large") from None
    except UnicodeDecodeError:
        raise InvalidRequest("the request body is not UTF-8") from None
