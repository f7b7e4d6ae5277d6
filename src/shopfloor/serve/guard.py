"""Browser safety for the dashboard: security headers on every answer, and no change made from another page.

A signed-in browser sends the dashboard's token cookie with every request to this host. SameSite=strict
keeps it from other *sites*, but a page served on another port of the same host is the same site, and
its form or `fetch` carried the cookie here: a foreign page rolled a model back. So a request that can
change something (any method but GET, HEAD and OPTIONS) and has no `Authorization` header, that is one a
browser could have sent on its own, must come from this service's own pages: its `Origin` (or, from a
browser that sends none, its `Referer`) must name the host the request was sent to. The check sits in
front of every route, so new dashboard forms are covered without a line of their own; programs that
send `Authorization: Bearer` are not riding on a cookie and pass.

Every answer also carries headers that keep the pages out of other sites' frames and stop the browser
from guessing content types; the content security policy allows this service's own scripts and styles,
the inline styles and `data:` images the pages and reports draw, and nothing from anywhere else.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
DEFAULT_PORTS = {"http": 80, "https": 443}
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
          "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
SECURITY_HEADERS = [(b"x-frame-options", b"DENY"), (b"content-security-policy", POLICY.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin")]  # same-origin: our own pages still send a Referer
COOKIE_PREFIX = b"shopfloor_token="


class BrowserGuard:
    """ASGI middleware: security headers on every response; 403 for a cookie-borne change from a foreign page."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS:
            problem = foreign_request(scope)
            if problem is not None:
                await _refuse(send, problem)
                return

        async def secured(message: dict) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, secured)


def foreign_request(scope) -> str | None:
    """Why a state-changing request may have been sent by another page, or None when it may go on."""
    headers = {}
    for name, value in scope["headers"]:
        headers.setdefault(name, value.decode("latin-1"))
    if b"authorization" in headers:
        return None  # a program with a token, not a browser's cookie
    cookie = COOKIE_PREFIX in headers.get(b"cookie", "").encode("latin-1")
    origin = headers.get(b"origin")
    source = origin if origin is not None else headers.get(b"referer")
    if source is None:
        if cookie:
            return ("this request carries the dashboard's sign-in cookie but no Origin or Referer header, so it "
                    "cannot be told from one sent by another page; send the change from the dashboard, or call the "
                    "API with 'Authorization: Bearer <token>'")
        return None  # no cookie: nothing to ride on (the token gate and the login form check the rest)
    hosts = [h for h in (headers.get(b"host"), headers.get(b"x-forwarded-host")) if h]
    if not any(_same_place(source, host) for host in hosts):
        shown = source if len(source) <= 100 else source[:100] + "..."
        return (f"this change was sent from another page ({shown}), not from this service's own pages: the "
                "dashboard accepts changes only from itself; programs send 'Authorization: Bearer <token>'")
    return None


def _same_place(source: str, host: str) -> bool:
    """Whether an Origin or Referer URL names `host` (a Host header: name and optional port)."""
    try:
        url, here = urlsplit(source), urlsplit("//" + host.split(",")[0].strip())
        default = DEFAULT_PORTS.get(url.scheme)
        return (url.scheme in DEFAULT_PORTS and url.hostname is not None and url.hostname == here.hostname
                and (url.port or default) == (here.port or default))
    except ValueError:  # a port that is not a number, a malformed IPv6 address: not this service
        return False


async def _refuse(send, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
