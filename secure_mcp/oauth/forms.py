"""Reading request parameters: size cap, known ones never repeated, unknown ones ignored."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from urllib.parse import parse_qsl

from starlette.requests import Request

from secure_mcp.oauth import rfc8707
from secure_mcp.oauth.errors import InvalidRequest, OAuthError

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


def single_values(pairs: Iterable[tuple[str, str]], known: Collection[str]) -> dict[str, str]:
    """The `known` parameters as a dict; unknown ones are ignored, even repeated (RFC 6749 3.1).

    A repeated known parameter is InvalidRequest (RFC 6749 3.1); a repeated `resource` is
    RFC 8707's several-resources request, which this server refuses with InvalidTarget.
    """
    result: dict[str, str] = {}
    for key, value in pairs:
        if key not in known:
            continue
        if key in result:
            raise repeated(key)
        result[key] = value
    return result


def repeated(key: str) -> OAuthError:
    """The error for a known parameter sent twice."""
    if key == "resource":
        return rfc8707.several_resources()
    return InvalidRequest(f"parameter {key} is repeated")


def parse_query(query: str, known: Collection[str]) -> dict[str, str]:
    """A URL-encoded query string as single values; undecodable input is InvalidRequest."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, errors="strict", max_num_fields=100)
    except ValueError as exc:
        raise InvalidRequest(f"malformed parameters: {exc}") from None
    return single_values(((k, v) for k, v in pairs if v != ""), known)


async def read_form(request: Request, limit: int, known: Collection[str]) -> dict[str, str]:
    """A form-encoded POST body as single values of `known` (empty values count as absent)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise InvalidRequest(f"the body must be {FORM_TYPE}")
    try:
        body = await read_body(request, limit)
        return parse_query(body.decode("utf-8"), known)
    except BodyTooLarge:
        raise InvalidRequest("the request body is too large") from None
    except UnicodeDecodeError:
        raise InvalidRequest("the request body is not UTF-8") from None
