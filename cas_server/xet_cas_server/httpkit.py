"""Small HTTP helpers shared by the route modules: the endpoint decorator (naming, disabled
endpoint groups, fault injection), bounded body reading, auth and path parsing."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from xet_pyodide.core.hashes import MerkleHash
from xet_pyodide.errors import XetFormatError

from .auth import Scope, TokenClaims, bearer_token
from .errors import BadRequest, NotFound, PayloadTooLarge, Unauthorized
from .faults import AbortedRequest, DroppedResponse, sleep_latency
from .signing import same_secret
from .state import CasState

Handler = Callable[[Request], Awaitable[Response]]


def state_of(request: Request) -> CasState:
    return request.app.state.cas


def endpoint(name: str, group: str | None = None) -> Callable[[Handler], Handler]:
    """Name a handler for stats/logs/faults; ``group`` names a switchable endpoint group
    (a disabled group answers 404, like a server that never had the endpoint)."""

    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def handler(request: Request) -> Response:
            request.scope["xcas.endpoint"] = name
            state = state_of(request)
            if group is not None and not state.config.enabled(group):
                raise NotFound(f"{request.url.path} is disabled on this server")
            faults = state.faults
            await sleep_latency(faults, name)
            injected = faults.error_response(name)
            if injected is not None:
                state.stats.add("faults_injected")
                request.scope["xcas.fault"] = "error"
                return injected
            if faults.decide(name, "abort"):
                state.stats.add("faults_injected")
                request.scope["xcas.fault"] = "abort"
                return AbortedRequest()
            response = await fn(request)
            if faults.decide(name, "drop"):
                state.stats.add("faults_injected")
                request.scope["xcas.fault"] = "drop"
                return DroppedResponse(response)
            return response

        return handler

    return wrap


async def read_body(
    request: Request, limit: int, counter: str | None = None, what: str = "body"
) -> bytes:
    """The whole request body, refusing (413) anything over ``limit`` without buffering it.
    Bytes are added to the ``counter`` stat as they arrive."""
    # Pieces are kept and joined once: growing one bytearray re-copies it as it grows (several
    # copies of a 64 MiB xorb; measured per GiB uploaded: 2.6 CPU-s before, 1.4 s with the join,
    # most of it first-touch page faults of the fresh buffer).
    pieces = await read_body_pieces(request, limit, counter, what)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


async def read_body_pieces(
    request: Request, limit: int, counter: str | None = None, what: str = "body"
) -> list[bytes]:
    """:func:`read_body` as the pieces the server received, not joined (a grant PUT writes
    them to its staging file as they are: joining a 64 MiB body cost ~0.4 CPU-s per GiB on the
    event loop, mostly page faults of the fresh buffer)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLarge(f"{what} of {declared} bytes exceeds the limit of {limit}")
        except ValueError:
            raise BadRequest("bad Content-Length") from None
    stats = state_of(request).stats
    pieces: list[bytes] = []
    size = 0
    try:
        async for piece in request.stream():
            if not piece:
                continue
            size += len(piece)
            if counter:
                stats.add(counter, len(piece))
            if size > limit:
                raise PayloadTooLarge(f"{what} exceeds the limit of {limit} bytes")
            pieces.append(piece)
    except ClientDisconnect:  # (or closed for idling: protocol.py) nobody reads an answer
        raise BadRequest(f"{what} incomplete: the connection was closed") from None
    return pieces


async def read_json(request: Request) -> Any:
    body = await read_body(request, state_of(request).config.max_json_bytes, what="JSON body")
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise BadRequest("body is not valid JSON") from None
    except RecursionError:  # "[[[[...": within the size limit, deeper than the parser goes
        raise BadRequest("JSON body is nested too deeply") from None


def require(request: Request, scope: Scope) -> TokenClaims:
    return state_of(request).tokens.check(bearer_token(request.headers), scope)


def require_dev_secret(request: Request) -> None:
    token = bearer_token(request.headers)
    if token is None or not same_secret(token, state_of(request).config.dev_secret):
        raise Unauthorized("this endpoint needs 'Authorization: Bearer <dev secret>'")


def hash_param(request: Request, name: str = "hash") -> MerkleHash:
    try:
        return MerkleHash.from_hex(request.path_params[name])
    except XetFormatError:
        raise BadRequest(f"{name} is not a Xet hash (64 hex digits)") from None


def prefix_param(request: Request, allowed: tuple[str, ...] = ("default",)) -> str:
    prefix = request.path_params["prefix"]
    if prefix not in allowed:
        raise NotFound(f"unknown prefix {prefix!r}")
    return prefix
