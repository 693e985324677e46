"""Read endpoints: global dedup query, reconstructions (v1, v2), file HEAD, signed xorb bytes."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from xet_pyodide.core.hashes import MerkleHash
from xet_pyodide.errors import XetFormatError

from . import byteranges, reconstruction
from .auth import Scope
from .dedup import dedup_shard
from .errors import BadRequest, Forbidden, NotFound, RangeNotSatisfiable
from .httpkit import endpoint, hash_param, prefix_param, require, state_of
from .index import FileRow
from .layout import XorbLayout
from .state import CasState


# ---------------------------------------------------------------------------- global dedup
@endpoint("chunks", group="dedup")
async def chunks(request: Request) -> Response:
    state = state_of(request)
    require(request, Scope.READ)
    prefix_param(request, ("default", "default-merkledb"))
    chunk = hash_param(request).hex()
    state.stats.add("dedup_queries")
    hits = state.store.index.dedup_lookup(chunk)
    if not hits:
        raise NotFound("chunk not known")
    layouts = [lay for x, _ in hits if (lay := state.store.layout(x)) is not None]
    key, created, expiry = state.dedup_keys.current(time.time())
    body = await run_in_threadpool(dedup_shard, layouts, key, created, expiry)
    state.stats.add("dedup_hits")
    return Response(body, media_type="application/octet-stream")


# ---------------------------------------------------------------------------- reconstruction
def _file(state: CasState, request: Request, repo: str) -> FileRow:
    """The file of the path, if registered in the token's repository (404 otherwise: a file
    of another repository is not revealed)."""
    row = state.store.file(hash_param(request, "file_id").hex(), repo)
    if row is None:
        raise NotFound("file not found in this repository")
    return row


def _range(request: Request, size: int) -> byteranges.ByteRange | None:
    header = request.headers.get("range")
    request.scope["xcas.detail"] = {"range": header}
    if header is None:
        return None
    try:
        rng = byteranges.parse_file_range(header, size)
    except ValueError as e:
        raise BadRequest(str(e)) from None
    if rng is None:
        raise RangeNotSatisfiable(
            f"range {header!r} starts at or after the end of the file ({size} bytes)", size=size
        )
    return rng


def _layout_getter(state: CasState) -> Callable[[str], XorbLayout]:
    def get(xorb_hex: str) -> XorbLayout:
        layout = state.store.layout(xorb_hex)
        if layout is None:  # pragma: no cover - files only reference stored xorbs
            raise NotFound(f"xorb {xorb_hex} of this file is missing")
        return layout

    return get


def _expiry(state: CasState, endpoint_name: str, request: Request) -> int:
    if state.faults.decide(endpoint_name, "expire"):
        state.stats.add("faults_injected")
        request.scope["xcas.fault"] = "expire"
        return int(time.time()) - 60
    return int(time.time()) + state.config.signed_url_ttl


async def _reconstruction(request: Request, version: int) -> Response:
    state = state_of(request)
    claims = require(request, Scope.READ)
    row = _file(state, request, claims.repo)
    rng = _range(request, row.size)
    layout = _layout_getter(state)
    name = f"reconstruction_v{version}"
    expires = _expiry(state, name, request)
    render = reconstruction.render_v2 if version == 2 else reconstruction.render_v1

    def build() -> dict[str, Any]:
        p = reconstruction.plan(row, layout, rng)
        return render(p, layout, state.signer, state.config.cas_url, expires)

    return JSONResponse(await run_in_threadpool(build))


@endpoint("reconstruction_v1")
async def reconstruction_v1(request: Request) -> Response:
    return await _reconstruction(request, 1)


@endpoint("reconstruction_v2", group="v2-reconstructions")
async def reconstruction_v2(request: Request) -> Response:
    return await _reconstruction(request, 2)


@endpoint("reconstruction_batch")
async def reconstruction_batch(request: Request) -> Response:
    """``GET /v1/reconstructions?file_id=..&file_id=..`` (batch, v1 shape):
    ``{"files": {id: terms}, "fetch_info": {...}}``; ids unknown in the token's repository are
    left out."""
    state = state_of(request)
    claims = require(request, Scope.READ)
    layout = _layout_getter(state)
    expires = _expiry(state, "reconstruction_batch", request)
    files: dict[str, Any] = {}
    fetch_info: dict[str, list[dict[str, Any]]] = {}
    for file_id in request.query_params.getlist("file_id")[:256]:
        try:
            row = state.store.file(MerkleHash.from_hex(file_id).hex(), claims.repo)
        except XetFormatError:
            raise BadRequest(f"bad file_id {file_id!r}") from None
        if row is None:
            continue
        doc = reconstruction.render_v1(
            reconstruction.plan(row, layout, None),
            layout,
            state.signer,
            state.config.cas_url,
            expires,
        )
        files[row.hash] = doc["terms"]
        for xorb, entries in doc["fetch_info"].items():
            fetch_info.setdefault(xorb, []).extend(entries)
    return JSONResponse({"files": files, "fetch_info": fetch_info})


@endpoint("file_head")
async def file_head(request: Request) -> Response:
    state = state_of(request)
    claims = require(request, Scope.READ)
    row = _file(state, request, claims.repo)
    return Response(status_code=200, headers={"Content-Length": str(row.size)})


# ---------------------------------------------------------------------------- signed xorb bytes
def _corrupt(data: bytes) -> bytes:
    """Flip one byte in the middle of the first record's payload (or the middle of the data)."""
    if len(data) > 8:
        payload_len = int.from_bytes(data[1:4], "little")
        pos = 8 + min(payload_len, len(data) - 9) // 2
    else:
        pos = len(data) // 2
    out = bytearray(data)
    out[pos] ^= 0xFF
    return bytes(out)


#: Most ranges one signed-URL request may ask for (a v2 entry signs at most this many).
MAX_FETCH_RANGES = reconstruction.MAX_RANGES_PER_URL
#: Bytes read from the object file per step of a streamed xorb response.
FETCH_BLOCK = 1 << 20


@endpoint("xorb_fetch")
async def xorb_fetch(request: Request) -> Response:
    """Signed xorb bytes. The requested ranges must lie inside the signed set, be at most
    :data:`MAX_FETCH_RANGES` and not overlap (416 otherwise), so one request serves at most
    the signed span; the body (one range, or ``multipart/byteranges``) is streamed from the
    object file in :data:`FETCH_BLOCK` reads, never built whole."""
    state = state_of(request)
    xorb = request.path_params["hash"]
    signed = state.signer.verify_xorb_url(request.url.path, dict(request.query_params), time.time())
    header = request.headers.get("range")
    if header is None:
        raise BadRequest("a Range header is required")
    try:
        wanted = byteranges.parse_ranges(header)
    except ValueError as e:
        raise BadRequest(str(e)) from None
    request.scope["xcas.detail"] = {"ranges": len(wanted)}
    if not byteranges.all_covered(wanted, signed):
        raise Forbidden("requested range is outside the signed range set")
    row = state.store.xorb_row(xorb)
    if row is None:  # pragma: no cover - we only sign URLs of stored xorbs
        raise NotFound("xorb not found")
    size = row.stored_len
    if any(last >= size for _, last in wanted):
        raise RangeNotSatisfiable("range beyond the object", size=size)
    if len(wanted) > MAX_FETCH_RANGES:
        raise RangeNotSatisfiable(f"more than {MAX_FETCH_RANGES} ranges", size=size)
    if byteranges.overlapping(wanted):
        raise RangeNotSatisfiable("overlapping or repeated ranges", size=size)
    corrupt = state.faults.decide("xorb_fetch", "corrupt")
    if corrupt:
        state.stats.add("faults_injected")
        request.scope["xcas.fault"] = "corrupt"
    state.stats.add("xorb_bytes_served", sum(last - first + 1 for first, last in wanted))

    async def blocks(first: int, last: int) -> AsyncIterator[bytes]:
        nonlocal corrupt
        for pos in range(first, last + 1, FETCH_BLOCK):
            n = min(FETCH_BLOCK, last + 1 - pos)
            data = await run_in_threadpool(state.store.objects.read_range, "xorb", xorb, pos, n)
            if corrupt:
                data, corrupt = _corrupt(data), False
            yield data

    if len(wanted) == 1:
        first, last = wanted[0]
        headers = {
            "Content-Range": f"bytes {first}-{last}/{size}",
            "Content-Length": str(last - first + 1),
        }
        return StreamingResponse(
            blocks(first, last),
            status_code=206,
            headers=headers,
            media_type="application/octet-stream",
        )
    boundary = secrets.token_hex(12)
    heads, closing = byteranges.multipart_heads(wanted, size, boundary)

    async def multipart() -> AsyncIterator[bytes]:
        for head, (first, last) in zip(heads, wanted, strict=True):
            yield head
            async for data in blocks(first, last):
                yield data
            yield b"\r\n"
        yield closing

    return StreamingResponse(
        multipart(),
        status_code=206,
        headers={"Content-Length": str(byteranges.multipart_length(wanted, heads, closing))},
        media_type=f"multipart/byteranges; boundary={boundary}",
    )


ROUTES = [
    Route("/v1/chunks/{prefix}/{hash}", chunks, methods=["GET"]),
    Route("/v1/reconstructions", reconstruction_batch, methods=["GET"]),
    Route("/v1/reconstructions/{file_id}", reconstruction_v1, methods=["GET"]),
    Route("/v2/reconstructions/{file_id}", reconstruction_v2, methods=["GET"]),
    Route("/v1/files/{file_id}", file_head, methods=["HEAD"]),
    Route("/xorb/default/{hash}", xorb_fetch, methods=["GET"]),
]
