"""The Hub-shaped token endpoint and the admin API (both guarded by the dev secret)."""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .auth import Scope, repo_key
from .errors import BadRequest, NotFound
from .httpkit import endpoint, read_json, require_dev_secret, state_of

#: /api/{models|datasets|spaces|buckets}/{repo...}/xet-{read|write}-token[/{revision}]
_TOKEN_PATH = re.compile(r"^(model|dataset|space|bucket)s/(.+?)/xet-(read|write)-token(?:/(.*))?$")
MAX_TOKEN_TTL = 7 * 24 * 3600


@endpoint("token")
async def token(request: Request) -> Response:
    """Mint a CAS access token, like ``GET https://huggingface.co/api/.../xet-write-token/main``.
    ``?ttl=SECONDS`` asks for a specific lifetime (tests); otherwise the fault override or the
    configured lifetime applies."""
    state = state_of(request)
    m = _TOKEN_PATH.match(request.path_params["rest"])
    if not m:
        raise NotFound("not a token route")
    require_dev_secret(request)
    repo_type, repo, scope_name, revision = m.groups()
    ttl_param = request.query_params.get("ttl")
    try:
        ttl = int(ttl_param) if ttl_param else None
    except ValueError:
        raise BadRequest("ttl must be an integer") from None
    if ttl is not None and not 1 <= ttl <= MAX_TOKEN_TTL:
        raise BadRequest(f"ttl must be within [1, {MAX_TOKEN_TTL}]")
    try:
        key = repo_key(repo_type, repo)
    except ValueError as e:
        raise BadRequest(str(e)) from None
    issued = state.issue_token(key, Scope(scope_name), revision or "", ttl)
    return JSONResponse(issued.json(), headers=issued.headers())


@endpoint("admin")
async def health(request: Request) -> Response:
    """Unauthenticated liveness probe."""
    return JSONResponse({"ok": True})


@endpoint("admin")
async def stats(request: Request) -> Response:
    require_dev_secret(request)
    state = state_of(request)
    return JSONResponse({**state.stats.snapshot(), "store": state.store.index.counts()})


@endpoint("admin")
async def reset_stats(request: Request) -> Response:
    require_dev_secret(request)
    state_of(request).stats.reset()
    return JSONResponse({"ok": True})


@endpoint("admin")
async def faults(request: Request) -> Response:
    """GET: current fault configuration. POST: replace it (``{}`` turns every fault off)."""
    require_dev_secret(request)
    state = state_of(request)
    if request.method == "POST":
        config = await read_json(request)
        if not isinstance(config, dict):
            raise BadRequest("fault configuration must be a JSON object")
        try:
            state.faults.configure(config)
        except (ValueError, TypeError) as e:
            raise BadRequest(f"bad fault configuration: {e}") from None
    return JSONResponse(state.faults.describe())


@endpoint("admin")
async def gc(request: Request) -> Response:
    """Remove orphan xorbs now: accepted more than ``grace`` seconds ago (JSON body, default
    the server's ``--orphan-xorb-grace``) and referenced by no stored shard. For tests."""
    require_dev_secret(request)
    state = state_of(request)
    body = await read_json(request) if int(request.headers.get("content-length") or 0) else {}
    grace = body.get("grace") if isinstance(body, dict) else None
    if grace is not None and (not isinstance(grace, (int, float)) or grace < 0):
        raise BadRequest("grace must be a non-negative number of seconds")
    removed = await run_in_threadpool(state.store.collect_orphans, grace)
    return JSONResponse({"removed": removed})


@endpoint("admin")
async def requests(request: Request) -> Response:
    require_dev_secret(request)
    try:
        limit = int(request.query_params.get("limit", "0")) or None
    except ValueError:
        raise BadRequest("limit must be an integer") from None
    return JSONResponse({"requests": state_of(request).stats.request_log(limit)})


ROUTES = [
    Route("/api/{rest:path}", token, methods=["GET"]),
    Route("/_admin/health", health, methods=["GET"]),
    Route("/_admin/stats", stats, methods=["GET"]),
    Route("/_admin/reset-stats", reset_stats, methods=["POST"]),
    Route("/_admin/faults", faults, methods=["GET", "POST"]),
    Route("/_admin/requests", requests, methods=["GET"]),
    Route("/_admin/gc", gc, methods=["POST"]),
]
