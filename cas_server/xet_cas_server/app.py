"""The ASGI application: routes, middleware (request id + logs + stats, CORS), error mapping."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xet_pyodide.kernels import get_kernels

from . import hub, native, routes_admin, routes_download, routes_upload
from .config import ServerConfig
from .errors import CasError
from .faults import ConnectionDropped
from .jsonlog import get_logger
from .state import CasState
from .static import IsolatedStaticFiles

log = get_logger("http")

#: Response headers a browser client may read.
CORS_EXPOSE_HEADERS = [
    "Content-Range", "Content-Length", "Content-Type", "X-Request-Id", "Retry-After",
    "X-Xet-Access-Token", "X-Xet-Token-Expiration", "X-Xet-Cas-Url", "WWW-Authenticate",
    # the Hub API's (hub/): resolve metadata, Xet file info links, typed errors, pagination
    "ETag", "Link", "X-Linked-Size", "X-Linked-Etag", "X-Repo-Commit", "X-Xet-Hash",
    "X-Error-Code", "X-Error-Message", "Accept-Ranges", "Content-Disposition",
]  # fmt: skip


class RequestContext:
    """Outermost middleware: request id, ``X-Request-Id`` and CORP headers, one JSON log line
    and one stats/request-log entry per request (also for errors and dropped connections)."""

    def __init__(self, app: ASGIApp, state: CasState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        scope["xcas.request_id"] = request_id
        started = time.perf_counter()
        info: dict[str, Any] = {"status": 0, "bytes_in": 0, "bytes_out": 0}

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                info["bytes_in"] += len(message.get("body", b""))
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                info["status"] = message["status"]
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        (b"x-request-id", request_id.encode()),
                        (b"cross-origin-resource-policy", b"cross-origin"),
                    ],
                }
            elif message["type"] == "http.response.body":
                info["bytes_out"] += len(message.get("body", b""))
            await send(message)

        error: str | None = None
        try:
            await self.app(scope, counting_receive, send_with_id)
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
            raise
        finally:
            entry = {
                "ts": time.time(),
                "request_id": request_id,
                "method": scope["method"],
                "path": scope["path"],
                "endpoint": scope.get("xcas.endpoint", "other"),
                "status": info["status"],
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "bytes_in": info["bytes_in"],
                "bytes_out": info["bytes_out"],
            }
            session = _header(scope, b"x-xet-session-id")
            if session:
                entry["session"] = session
            if scope.get("xcas.fault"):
                entry["fault"] = scope["xcas.fault"]
            entry.update(scope.get("xcas.detail") or {})
            if error:
                entry["error"] = error
            self.state.stats.record_request(entry)
            log.info("request", extra=entry)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return value.decode("latin-1")
    return None


async def _cas_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CasError)
    body = {
        "error": exc.code,
        "message": exc.message,
        "request_id": request.scope.get("xcas.request_id"),
    }
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ConnectionDropped):  # injected on purpose; the connection is gone
        return Response(status_code=500)
    log.error(
        "unhandled error", exc_info=exc, extra={"request_id": request.scope.get("xcas.request_id")}
    )
    body = {
        "error": "internal_error",
        "message": str(exc),
        "request_id": request.scope.get("xcas.request_id"),
    }
    return JSONResponse(body, status_code=500)


async def _sweep_grants(state: CasState) -> None:
    """Drop expired upload grants and their staged bodies, every 30 s (or each grant TTL)."""
    period = max(1.0, min(30.0, state.config.grant_ttl / 2))
    while True:
        await asyncio.sleep(period)
        removed = await run_in_threadpool(state.grants.sweep)
        if removed:
            log.info("expired upload grants removed", extra={"grants": removed})


def create_app(config: ServerConfig) -> Starlette:
    state = CasState(config)
    hub_api = hub.Hub(state)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Load the kernels now: a missing .wasm should stop the server at start, not fail
        # the first upload (XET_PYODIDE_KERNELS=reference selects the native-library backend).
        kernels = get_kernels()
        report = state.store.recover()
        log.info(
            "storage recovered",
            extra={**report, "kernels": kernels.name, "xorb_validation": native.NAME},
        )
        sweeper = asyncio.create_task(_sweep_grants(state))
        try:
            yield
        finally:
            sweeper.cancel()
            hub_api.close()
            state.close()

    routes: list[BaseRoute] = [
        *routes_upload.ROUTES, *routes_download.ROUTES, *hub.ROUTES, *routes_admin.ROUTES
    ]  # fmt: skip
    if config.web_dir is not None:
        routes.append(Mount("/", app=IsolatedStaticFiles(config.web_dir), name="web"))
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestContext, state=state),
            Middleware(
                CORSMiddleware,
                allow_origins=["*"],
                allow_methods=["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"],
                # "*" makes Starlette echo the requested headers (Authorization, Range,
                # Content-Type, X-Xet-*...): a literal "*" would not cover Authorization.
                allow_headers=["*"],
                expose_headers=CORS_EXPOSE_HEADERS,
                max_age=600,
            ),
        ],
        exception_handlers={CasError: _cas_error, Exception: _internal_error},
        lifespan=lifespan,
    )
    app.state.cas = state
    app.state.hub = hub_api
    return app
