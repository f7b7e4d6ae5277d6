"""API tokens: created on the command line, hashed at rest, checked on every /api request.

A token is 32 random bytes (URL-safe text, prefixed `sf_` so that people recognise one in a
config file). `<models>/tokens.json` keeps only its SHA-256, its name, its scope and when it was
made: a copy of the file lets nobody call the service. A slow password hash would add nothing,
since the token has 256 bits of entropy, and would cost milliseconds on every request.

Scopes: `read` (list models, predict, inspect) and `admin` (read, plus promote and roll back).
The service re-reads the file when it changes, so `shopfloor token revoke` takes effect within a second.

The CLI calls `create_token`, `list_tokens` and `revoke_token`; the dashboard calls `token_scope`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shopfloor.errors import ShopfloorError
from shopfloor.registry import locked_file

TOKENS = "tokens.json"
COOKIE = "shopfloor_token"
SCOPES = ("read", "admin")
PREFIX = "sf_"
RECHECK_SECONDS = 1.0  # a revoked token stops working within this; a stat per request cost more than the check
TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")  # \Z: '$' would let a trailing newline through

# Declared for the OpenAPI page (its Authorize button); the check itself is `require` below.
bearer = HTTPBearer(auto_error=False, description="an API token from 'shopfloor token create'")


class TokenError(ShopfloorError):
    """A token name or scope that cannot be used, or a token that does not exist."""


class NotAuthenticated(ShopfloorError):
    """A request without a valid token (HTTP 401)."""


class Forbidden(ShopfloorError):
    """A valid token without the scope a route needs (HTTP 403)."""


# -- the command line's side ------------------------------------------------------------------
def create_token(models_dir: str | os.PathLike, name: str, scope: str = "read") -> str:
    """Create a token and return it in plain text: it is shown this once and stored only hashed."""
    if not isinstance(name, str) or not TOKEN_NAME.match(name):
        raise TokenError(f"'{name}' is not a valid token name: use 1-64 letters, digits, '.', '@', '-' or '_'")
    if scope not in SCOPES:
        raise TokenError(f"'{scope}' is not a scope: use 'read' (predict and inspect) or 'admin' (also promote "
                         "and roll back models)")
    token = PREFIX + secrets.token_urlsafe(32)
    with _locked(models_dir) as path:
        entries = _read(path)
        if any(e["name"] == name for e in entries):
            raise TokenError(f"a token named '{name}' exists already: revoke it first with "
                             f"'shopfloor token revoke --models {models_dir} {name}', or pick another name")
        entries.append({"name": name, "scope": scope, "sha256": _digest(token), "hint": token[:7],
                        "created": datetime.now(UTC).isoformat(timespec="seconds")})
        _write(path, entries)
    return token


def list_tokens(models_dir: str | os.PathLike) -> list[dict]:
    """Name, scope, creation time and first characters of every token (never the hash)."""
    return [{k: e.get(k) for k in ("name", "scope", "created", "hint")} for e in _read(_path(models_dir))]


def revoke_token(models_dir: str | os.PathLike, name: str) -> None:
    with _locked(models_dir) as path:
        entries = _read(path)
        kept = [e for e in entries if e["name"] != name]
        if len(kept) == len(entries):
            known = ", ".join(e["name"] for e in entries) or "none"
            raise TokenError(f"no token named '{name}' (tokens: {known})")
        _write(path, kept)


# -- the service's side ---------------------------------------------------------------------------
class TokenBook:
    """The hashed tokens of one registry, re-read whenever tokens.json changes on disk."""

    def __init__(self, models_dir: str | os.PathLike, recheck: float = RECHECK_SECONDS):
        self.path = _path(models_dir)
        self.recheck = recheck
        self._checked = -float("inf")
        self._stamp: tuple[int, int] | None = None
        self._scopes: dict[str, str] = {}
        self._names: dict[str, str] = {}  # digest -> the token's name: who acknowledged an alert
        self._lock = threading.Lock()

    def scope_of(self, token: str | None) -> str | None:
        if not token:
            return None
        self._refresh()
        return self._scopes.get(_digest(token))

    def name_of(self, token: str | None) -> str | None:
        if not token or self.scope_of(token) is None:
            return None
        return self._names.get(_digest(token))

    @property
    def empty(self) -> bool:
        self._refresh()
        return not self._scopes

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.recheck:
            return
        self._checked = now
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return
        with self._lock:
            try:
                entries = _read(self.path) if stamp else []
            except TokenError:
                entries = []  # a damaged file lets nobody in; the CLI names the problem
            self._scopes = {e["sha256"]: e["scope"] for e in entries if e.get("scope") in SCOPES and e.get("sha256")}
            self._names = {e["sha256"]: str(e["name"]) for e in entries if e.get("sha256")}
            self._stamp = stamp


def presented_token(request: Request) -> str | None:
    """The token of a request: `Authorization: Bearer <token>`, else the dashboard's cookie."""
    header = request.headers.get("authorization")
    if header:
        kind, _, value = header.partition(" ")
        return value.strip() if kind.lower() == "bearer" and value.strip() else None
    return request.cookies.get(COOKIE)


def token_scope(request: Request) -> str | None:
    """'read', 'admin', or None when the request carries no valid token (the dashboard redirects to /login)."""
    return request.app.state.tokens.scope_of(presented_token(request))


def authorize(request: Request, scope: str) -> str:
    """The scope granted to the request's token; NotAuthenticated (401) or Forbidden (403) otherwise."""
    granted = getattr(request.state, "granted", None)  # found by the TokenGate already
    if granted is not None:
        return _within(granted, scope)
    book: TokenBook = request.app.state.tokens
    token = presented_token(request)
    if token is None:
        if book.empty:
            raise NotAuthenticated(f"this service has no API tokens yet: create one with 'shopfloor token create "
                                   f"--models {book.path.parent} --scope read --name NAME' and send it as "
                                   "'Authorization: Bearer <token>'")
        raise NotAuthenticated("an API token is needed: send 'Authorization: Bearer <token>' "
                               "(tokens come from 'shopfloor token create')")
    granted = book.scope_of(token)
    if granted is None:
        raise NotAuthenticated("the API token is not valid (revoked, mistyped or from another registry)")
    return _within(granted, scope)


def _within(granted: str, scope: str) -> str:
    if scope == "admin" and granted != "admin":
        raise Forbidden("this needs an admin token; yours has the read scope "
                        "(create one with 'shopfloor token create --scope admin')")
    return granted


def require(scope: str):
    """A FastAPI dependency that lets a request through only with a token of `scope` (admin implies read)."""

    async def check(request: Request, _: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
        return authorize(request, scope)

    check.__name__ = f"require_{scope}"
    return check


# The OpenAPI entry of a route that calls `authorize` itself (the busy routes skip FastAPI's dependency machinery)
SECURED = {"security": [{"HTTPBearer": []}]}


# -- the file -----------------------------------------------------------------------------------
def _path(models_dir: str | os.PathLike) -> Path:
    return Path(models_dir) / TOKENS


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _read(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TokenError(f"{path} is not valid JSON ({err}); restore it or delete it and create the tokens again") from None
    entries = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "name" in e for e in entries):
        raise TokenError(f"{path} is not a shopfloor token file; restore it or delete it and create the tokens again")
    return entries


def _write(path: Path, entries: list[dict]) -> None:
    from shopfloor.artifacts import atomic_write

    # hashes only, but nobody else needs them
    atomic_write(path, json.dumps({"tokens": entries}, indent=2) + "\n", mode=0o600)


@contextlib.contextmanager
def _locked(models_dir: str | os.PathLike):
    """tokens.json, with an exclusive lock so that two CLI calls at once cannot lose a token."""
    folder = Path(models_dir)
    if not folder.is_dir():
        raise TokenError(f"the model registry {folder} does not exist: create it with "
                         f"'shopfloor models add --models {folder} NAME MODEL_FOLDER'")
    with locked_file(folder / f".{TOKENS}.lock"):
        yield _path(folder)


class TokenGate:
    """ASGI middleware: an /api request without a valid token is answered 401 before its body is read.

    Route dependencies run only after FastAPI has parsed the body, which for an image upload means
    spooling up to a batch's worth of files; without this gate an anonymous client could make the
    service do that. Scopes (admin) are still checked by the routes themselves.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            request = Request(scope)
            try:
                request.state.granted = authorize(request, "read")  # the route's own check reads it from here
            except NotAuthenticated as err:
                from fastapi.responses import JSONResponse

                await JSONResponse({"detail": str(err)}, status_code=401,
                                   headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
                return
        await self.app(scope, receive, send)
