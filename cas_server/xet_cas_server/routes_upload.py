"""Upload endpoints: xorbs (legacy POST and the grant flow) and shards (v1 JSON, v2 NDJSON)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from xet_pyodide.core.hashes import MerkleHash
from xet_pyodide.core.shard_model import Shard

from .auth import Scope, TokenClaims
from .checksum import crc64_nvme_of_pieces
from .errors import (
    BadRequest,
    CasError,
    Forbidden,
    InvalidObject,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
)
from .httpkit import (
    endpoint,
    hash_param,
    prefix_param,
    read_body,
    read_body_pieces,
    read_json,
    require,
    state_of,
)
from .jsonlog import get_logger
from .state import CasState

log = get_logger("upload")


def _started(state: CasState, claims: TokenClaims, xorb_hex: str) -> None:
    if state.upload_observer is not None:
        state.upload_observer.xorb_started(claims.token_id, claims.repo, xorb_hex)


def _stored(state: CasState, xorb_hex: str) -> None:
    if state.upload_observer is not None:
        state.upload_observer.xorb_stored(xorb_hex)


def _registered(state: CasState, repo: str, shard: Shard) -> None:
    """(worker thread) Tell the observer which files the shard registered and their claims."""
    if state.upload_observer is not None:
        files = [
            (f.file_hash.hex(), f.sha256.hex() if f.sha256 is not None else None, f.size)
            for f in shard.files
        ]
        state.upload_observer.files_registered(repo, files)


async def _store_xorb(state: CasState, body: bytes, request: Request) -> bool:
    claimed = hash_param(request)
    hook = state.faults.commit_hook(request.scope["xcas.endpoint"])
    try:
        inserted = await run_in_threadpool(state.store.put_xorb, body, claimed, hook)
    except InvalidObject:
        state.stats.add("rejected_objects")
        raise
    state.stats.add("xorbs_inserted" if inserted else "xorbs_existing")
    _stored(state, claimed.hex())
    return inserted


def _authorized(request: Request, scope: Scope) -> tuple[CasState, TokenClaims]:
    """The server state and the token's claims, once the bearer token has ``scope`` and the
    path's prefix is valid."""
    state = state_of(request)
    claims = require(request, scope)
    prefix_param(request)
    return state, claims


# ---------------------------------------------------------------------------- legacy xorb POST
@endpoint("xorb_upload")
async def xorb_upload(request: Request) -> Response:
    state, claims = _authorized(request, Scope.WRITE)
    _started(state, claims, hash_param(request).hex())
    body = await read_body(request, state.config.max_xorb_bytes, "xorb_bytes_received", "xorb")
    inserted = await _store_xorb(state, body, request)
    return JSONResponse({"was_inserted": inserted})


@endpoint("xorb_head")
async def xorb_head(request: Request) -> Response:
    state, _ = _authorized(request, Scope.READ)
    row = state.store.xorb_row(hash_param(request).hex())
    if row is None:
        raise NotFound("xorb not found")
    return Response(status_code=200, headers={"Content-Length": str(row.stored_len)})


# ---------------------------------------------------------------------------- grant flow
def _grant_request(raw: Any, max_len: int) -> tuple[int, int]:
    try:
        length = int(raw["length"])
        checksum = raw["checksum"]
        algo, value = checksum["algo"], int(checksum["value"])
    except (TypeError, KeyError, ValueError):
        raise BadRequest(
            'expected {"length": n, "checksum": {"algo": "crc64nvme", "value": "..."}}'
        ) from None
    if str(algo).lower() != "crc64nvme":
        raise BadRequest(f"unsupported checksum algorithm {algo!r}")
    if not length > 0:
        raise BadRequest("length must be positive")
    if length > max_len:
        raise PayloadTooLarge(f"xorb of {length} bytes exceeds the limit of {max_len}")
    if not 0 <= value < 1 << 64:
        raise BadRequest("checksum value out of range")
    return length, value


@endpoint("xorb_grant", group="grants")
async def xorb_grant(request: Request) -> Response:
    state, claims = _authorized(request, Scope.WRITE)
    xorb = hash_param(request).hex()
    length, crc = _grant_request(await read_json(request), state.config.max_xorb_bytes)
    if state.store.xorb_row(xorb) is not None:
        _started(state, claims, xorb)
        _stored(state, xorb)
        return JSONResponse({"exists": True}, status_code=200)
    ttl = state.config.grant_ttl
    grant = state.grants.create(xorb, length, crc, ttl, claims.token_id, claims.repo)
    _started(state, claims, xorb)
    url = state.signer.sign_grant_url(state.config.cas_url, xorb, grant.id, int(grant.expires))
    headers = {"Content-Type": "application/octet-stream", "X-Xet-Checksum-Crc64nvme": str(crc)}
    return JSONResponse(
        {"id": grant.id, "method": "PUT", "url": url, "headers": headers}, status_code=201
    )


@endpoint("grant_put", group="grants")
async def grant_put(request: Request) -> Response:
    """The upload URL of a grant: authority comes from the URL signature, not a bearer token."""
    state = state_of(request)
    xorb, grant_id = request.path_params["hash"], request.path_params["grant_id"]
    state.signer.verify_grant_url(request.url.path, dict(request.query_params), time.time())
    # checked before the grant itself: a retried PUT after a commit (grant gone) is a success
    if state.store.xorb_row(xorb) is not None:
        raise PreconditionFailed("xorb already stored")
    grant = state.grants.get(grant_id)
    if grant is None or grant.xorb_hex != xorb:
        raise Forbidden("unknown or expired upload grant")
    pieces = await read_body_pieces(request, grant.length, "xorb_bytes_received", "xorb")
    size = sum(len(p) for p in pieces)
    if size != grant.length:
        raise BadRequest(f"body has {size} bytes, the grant says {grant.length}")
    if request.headers.get("x-xet-checksum-crc64nvme", str(grant.crc)) != str(grant.crc):
        raise BadRequest("checksum header differs from the grant")
    actual = await run_in_threadpool(crc64_nvme_of_pieces, pieces)
    if actual != grant.crc:
        raise BadRequest(f"CRC-64/NVME of the body is {actual}, the grant says {grant.crc}")
    # Validated now, as it is staged: the commit then only renames the staged file into place
    # (before, it read the file back, validated it and wrote it again).
    path = state.store.objects.staging_path(grant.id)
    try:
        valid = await run_in_threadpool(
            state.store.stage_xorb, pieces, MerkleHash.from_hex(xorb), path
        )
        invalid = None
    except InvalidObject as e:
        valid, invalid = None, e.message
    if state.grants.get(grant.id) is not grant:  # committed or expired meanwhile
        path.unlink(missing_ok=True)
        raise Forbidden("unknown or expired upload grant")
    previous = grant.staged
    grant.staged, grant.valid, grant.invalid = path, valid, invalid
    grant.uploaded = True
    if previous is not None:
        previous.unlink(missing_ok=True)
    return Response(status_code=200)


@endpoint("xorb_commit", group="grants")
async def xorb_commit(request: Request) -> Response:
    state, claims = _authorized(request, Scope.WRITE)
    xorb = hash_param(request).hex()
    grant = state.grants.get(request.path_params["grant_id"])
    if grant is not None and grant.repo != claims.repo:
        raise Forbidden("this upload grant was given to a token of another repository")
    if grant is None or grant.xorb_hex != xorb or not grant.uploaded:
        raise NotFound("no data was uploaded for this grant")
    # (path and verdict read together, on the event loop: a PUT still running cannot slip
    # other bytes under this verdict)
    path, valid, invalid = grant.staged, grant.valid, grant.invalid
    if path is None or not path.exists():
        raise NotFound("no data was uploaded for this grant")
    # The grant is used up here, before the first await: a second commit of it now finds no
    # grant (404: the client asks for a new one, answered "exists" once this one is stored),
    # and a PUT of it still arriving is refused instead of unlinking or replacing the file
    # being adopted below (which made this commit fail with a 500, or two commits append the
    # footer twice).
    state.grants.discard(grant.id)
    grant.staged = None
    claimed = hash_param(request)
    hook = state.faults.commit_hook(request.scope["xcas.endpoint"])
    try:
        if state.store.xorb_row(xorb) is not None:
            inserted = False
        elif valid is None:
            state.stats.add("rejected_objects")
            raise InvalidObject(invalid or "xorb was not validated")
        else:
            inserted = await run_in_threadpool(
                state.store.commit_staged_xorb, claimed, path, valid, grant.length, hook
            )
    finally:
        state.store.objects.drop_staged(grant.id)
    state.stats.add("xorbs_inserted" if inserted else "xorbs_existing")
    _stored(state, xorb)
    return JSONResponse({"was_inserted": inserted})


# ---------------------------------------------------------------------------- shards
async def _read_shard(request: Request) -> tuple[bytes, str]:
    """The shard body and the repository its files are registered in (the token's)."""
    claims = require(request, Scope.WRITE)
    state = state_of(request)
    body = await read_body(request, state.config.max_shard_bytes, "shard_bytes_received", "shard")
    return body, claims.repo


def _count_shard(state: CasState, inserted: bool, new_files: int) -> None:
    state.stats.add("shards_inserted" if inserted else "shards_existing")
    state.stats.add("files_registered", new_files)


@endpoint("shard_v1")
async def shard_v1(request: Request) -> Response:
    state = state_of(request)
    body, repo = await _read_shard(request)
    try:
        shard = await run_in_threadpool(state.store.parse_shard, body)
        hook = state.faults.commit_hook("shard_v1")
        result = await run_in_threadpool(state.store.put_shard, body, shard, repo, None, None, hook)
    except InvalidObject:
        state.stats.add("rejected_objects")
        raise
    _count_shard(state, result.inserted, result.new_files)
    await run_in_threadpool(_registered, state, repo, shard)
    return JSONResponse({"result": 1 if result.inserted else 0})


def _frame(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


@endpoint("shard_v2", group="v2-shards")
async def shard_v2(request: Request) -> Response:
    """NDJSON progress stream; malformed bytes are refused with a plain 400 before streaming,
    semantic failures (missing xorb, wrong hash) end the stream with an ``error`` frame."""
    state = state_of(request)
    body, repo = await _read_shard(request)
    try:
        shard = await run_in_threadpool(state.store.parse_shard, body)
    except InvalidObject:
        state.stats.add("rejected_objects")
        raise
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    total = len(shard.files)
    step = max(1, total // 20)

    def emit(frame: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, frame)

    def progress(done: int, of: int) -> None:
        if done % step == 0 or done == of:
            emit({"type": "validating", "verified": done, "total": of})

    def work() -> None:
        try:
            result = state.store.put_shard(
                body,
                shard,
                repo,
                progress,
                lambda stage: emit({"type": "committing", "stage": stage}),
                state.faults.commit_hook("shard_v2"),
            )
        except InvalidObject as e:
            state.stats.add("rejected_objects")
            emit({"type": "error", "message": e.message, "retryable": False})
        except CasError as e:
            emit({"type": "error", "message": e.message, "retryable": e.status >= 500})
        except Exception as e:  # a server bug or I/O failure: the client may retry
            log.exception("shard commit failed")
            emit({"type": "error", "message": f"internal error: {e}", "retryable": True})
        else:
            _count_shard(state, result.inserted, result.new_files)
            _registered(state, repo, shard)
            emit({"type": "result", "result": 1 if result.inserted else 0})

    worker = loop.run_in_executor(None, work)
    heartbeat = state.config.heartbeat_seconds

    async def frames() -> AsyncIterator[bytes]:
        last: dict[str, Any] = {"type": "validating", "verified": 0, "total": total}
        yield _frame(last)
        while True:
            try:
                last = await asyncio.wait_for(queue.get(), heartbeat)
            except TimeoutError:
                yield _frame(last)  # heartbeat: repeat the last frame
                continue
            yield _frame(last)
            if last["type"] in ("result", "error"):
                await worker
                return

    return StreamingResponse(frames(), media_type="application/x-ndjson")


@endpoint("telemetry")
async def telemetry(request: Request) -> Response:
    """hf_xet posts one summary per transfer; accepted and dropped."""
    await read_body(request, state_of(request).config.max_json_bytes)
    return Response(status_code=204)


ROUTES = [
    Route("/v1/xorbs/{prefix}/{hash}", xorb_upload, methods=["POST"]),
    Route("/v1/xorbs/{prefix}/{hash}", xorb_head, methods=["HEAD"]),
    Route("/v1/xorb-grants/{prefix}/{hash}", xorb_grant, methods=["POST"]),
    Route("/upload/xorb/default/{hash}/{grant_id}", grant_put, methods=["PUT"]),
    Route("/v1/xorb-commits/{prefix}/{hash}/grant/{grant_id}", xorb_commit, methods=["POST"]),
    Route("/v1/shards", shard_v1, methods=["POST"]),
    Route("/v2/shards", shard_v2, methods=["POST"]),
    Route("/v1/telemetry", telemetry, methods=["POST"]),
]
