"""Request size limits, enforced while the body arrives.

`Content-Length` is checked first, so an honest client that sends too much hears 413 before it
uploads; but a client may lie, or stream with chunked encoding, so every chunk is counted as it
is read and the request is cut off once it passes the limit. The body is never buffered whole
before the check. Uploads of images get their own, larger limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import HTTPException

from shopfloor.errors import ShopfloorError

KIB, MIB = 1024, 1024 * 1024
MULTIPART_OVERHEAD = 64 * KIB  # part headers and boundaries around the files


class TooLarge(ShopfloorError):
    """More rows or images in one request than the service takes (HTTP 413)."""


def check_count(count: int, limit: int, what: str) -> None:
    """TooLarge when one request holds more than `limit` `what` (rows, outcomes, images): one line saying to split."""
    if count > limit:
        raise TooLarge(f"{count:,} {what} in one request; this service takes at most {limit:,}: "
                       "split them over several requests")


class TooBusy(ShopfloorError):
    """A client with as many heavy requests in flight as it may have (HTTP 429, with Retry-After)."""

    def __init__(self, message: str, retry_after: int = 2):
        super().__init__(message)
        self.retry_after = retry_after


class BodyTooLarge(HTTPException):
    """Raised from inside `receive`: FastAPI passes HTTPExceptions from body parsing through unchanged."""

    def __init__(self, limit: int, what: str):
        super().__init__(413, f"the request body is larger than the {_size(limit)} this service accepts for {what}; "
                              "send less per request", headers={"Connection": "close"})


class BodyLimit:
    """ASGI middleware: 413 for bodies over `limit_for(path)` bytes (a (limit, description) pair)."""

    def __init__(self, app, limit_for: Callable[[str], tuple[int, str]]):
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit, what = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_413(send, BodyTooLarge(limit, what))
            return
        received = 0

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, what)
            return message

        started = False

        async def watched(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as err:  # read outside FastAPI's body parsing (a handler reading the stream itself)
            if started:
                raise
            await _send_413(send, err)


def _content_length(scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send, err: BodyTooLarge) -> None:
    body = json.dumps({"detail": err.detail}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _size(n: int) -> str:
    return f"{n / MIB:.3g} MiB" if n >= MIB else f"{n / KIB:.3g} KiB"
