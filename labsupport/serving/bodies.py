"""Reading request bodies: a size limit enforced while reading, JSON that cannot blow the stack.

    >>> from labsupport.serving.bodies import parse_json
    >>> parse_json(b'{"prompt": [1, 2]}')
    {'prompt': [1, 2]}
    >>> from labsupport.serving.errors import ApiError
    >>> try:
    ...     parse_json(b"[" * 100_000 + b"]" * 100_000)
    ... except ApiError as e:
    ...     print(e.status, e.message)
    400 Request body nests too deeply (the limit is 64 levels).

`read_body` stops at `limit` bytes, whatever the client announced (a `Content-Length` over the
limit is refused before a byte is read), so a huge upload costs the server no memory. A client
that hangs up mid-upload raises `ClientGone`: the caller logs one line and answers nobody.
`require_json` is vLLM's check: `Content-Type` must be `application/json`.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import ClientDisconnect, Request

from labsupport.serving.errors import ApiError

MAX_BODY_BYTES = 1 << 20
MAX_DEPTH = 64  # nesting levels of arrays and objects; a chat body needs < 10


class ClientGone(Exception):
    """The client disconnected before its request body was complete."""


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, or ApiError 413 as soon as it exceeds `limit` bytes."""
    announced = request.headers.get("content-length")
    if announced is not None:
        if not announced.strip().isdigit():
            raise ApiError(400, f"Content-Length {announced!r} is not a number.")
        if int(announced) > limit:
            raise ApiError(413, f"Request body is {announced} bytes; the limit is {limit}.")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"Request body is over {limit} bytes; the limit is {limit}.")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientGone(f"client left after {size} bytes of its request body") from None
    return b"".join(chunks)


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, (list, dict)):
            deepest = max(deepest, level)
            if deepest > MAX_DEPTH:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


def parse_json(body: bytes) -> Any:
    """The JSON value of `body`; ApiError 400 for bad JSON or nesting deeper than MAX_DEPTH."""
    too_deep = ApiError(400, f"Request body nests too deeply (the limit is {MAX_DEPTH} levels).")
    try:
        value = json.loads(body)
    except RecursionError:
        raise too_deep from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"Request body is not valid JSON: {exc}") from None
    if _depth(value) > MAX_DEPTH:
        raise too_deep
    return value


def require_json(request: Request) -> None:
    """vLLM's media-type check: anything but application/json is a 400."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise ApiError(400, "Unsupported Media Type: Only 'application/json' is allowed")
