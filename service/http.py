"""HTTP plumbing: error handlers (one status per ServiceError), the request body limit and
the per-token page cache."""

from __future__ import annotations

import json
import logging

import redis
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.cache import QueryCache
from service.errors import InvalidInputError, RateLimitedError, ServiceError, UnauthorizedError
from service.security import token_digest

logger = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    """Map the service's exceptions to JSON responses (never a traceback to the client)."""

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        headers: dict[str, str] = {}
        if isinstance(exc, RateLimitedError):
            headers["Retry-After"] = str(exc.retry_after_s)
        if isinstance(exc, UnauthorizedError):
            headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, InvalidInputError):
            detail: object = [{"loc": list(exc.loc), "msg": exc.message, "type": "value_error"}]
        else:
            detail = str(exc)
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(OperationalError)
    async def _db_down(_: Request, exc: OperationalError) -> JSONResponse:
        logger.error("database error: %s", exc)
        return JSONResponse({"detail": "database unavailable"}, status_code=503)

    @app.exception_handler(redis.RedisError)
    async def _redis_down(_: Request, exc: redis.RedisError) -> JSONResponse:
        logger.error("redis error: %s", exc)
        return JSONResponse({"detail": "redis unavailable"}, status_code=503)


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes`` (by Content-Length, or counted while streaming)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._reject(send)
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counting_receive, send)

    def _message(self) -> str:
        return f"request body exceeds the limit of {self.max_bytes} bytes"

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"detail": self._message()}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def served_key(scope: Scope) -> tuple[str, str, bytes] | None:
    """Cache key of an authenticated GET: (token digest, path, raw query); None without token."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token:
                return token_digest(token.strip()), scope["path"], scope.get("query_string", b"")
    return None


class ServedPageCache:
    """Answers a GET from memory when the same token fetched the same URL moments ago.

    Only pages an endpoint puts under :func:`served_key` are served here (the class
    timeline); they live ``EMO_HISTORY_CACHE_S`` seconds. A hit skips routing, dependency
    solving and the database: ~50 dashboards polling one session cost one query per window.
    """

    def __init__(self, app: ASGIApp, cache: QueryCache) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            key = served_key(scope)
            body = self.cache.peek(key) if key is not None else None
            if isinstance(body, bytes):
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
