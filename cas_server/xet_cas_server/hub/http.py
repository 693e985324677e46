"""HTTP helpers of the Hub routes: the endpoint decorator (Hub-shaped errors), path and body
parsing, absolute URLs."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, unquote

from starlette.requests import Request
from starlette.responses import Response

from ..errors import CasError
from ..httpkit import endpoint, read_body
from .errors import BadHubRequest, RepoNotFound, hub_response
from .names import PLURALS, RepoId, repo_id
from .service import Hub

Handler = Callable[[Request], Awaitable[Response]]


def hub_endpoint(name: str) -> Callable[[Handler], Handler]:
    """Like :func:`httpkit.endpoint` (stats, logs, faults under ``name``), answering every
    refusal in the Hub's error shape."""

    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def guarded(request: Request) -> Response:
            try:
                return await fn(request)
            except CasError as exc:
                return hub_response(exc, request.scope.get("xcas.request_id"))

        return endpoint(name)(guarded)

    return wrap


def hub_of(request: Request) -> Hub:
    return request.app.state.hub


def repo_param(request: Request) -> RepoId:
    """``/api/{kind}/{ns}/{name}/…`` (kind = models | datasets | spaces)."""
    params = request.path_params
    kind = params.get("kind", "models")
    if kind not in PLURALS:
        raise RepoNotFound(f"unknown repository kind {kind!r}")
    return repo_id(PLURALS[kind], params["ns"], params["name"])


def web_repo(request: Request) -> RepoId:
    """Repository of a web path: ``/{ns}/{name}/…`` or ``/{datasets|spaces}/{ns}/{name}/…``."""
    params = request.path_params
    kind = params.get("kind")
    if kind is not None and kind not in ("datasets", "spaces"):
        raise RepoNotFound(f"unknown repository kind {kind!r}")
    return repo_id(PLURALS[kind] if kind else "model", params["ns"], params["name"])


def raw_tail(request: Request, marker: str) -> tuple[str, str]:
    """(revision, path) after ``/{marker}/`` in the *raw* request path: the revision is one
    percent-encoded segment (``refs%2Fpr%2F1``), which the decoded path cannot tell apart."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    raw_path = raw.decode("latin-1").split("?", 1)[0]
    _, sep, tail = raw_path.partition(f"/{marker}/")
    if not sep:
        raise BadHubRequest(f"expected /{marker}/<revision>[/<path>]")
    revision, _, path = tail.partition("/")
    return unquote(revision), "/".join(unquote(s) for s in path.split("/")) if path else ""


def absolute(request: Request, path: str) -> str:
    """``path`` on this server's public URL (``--public-url``; never the request's ``Host``)."""
    return hub_of(request).cas.config.cas_url + path


async def json_body(request: Request, limit: int | None = None) -> Any:
    state = hub_of(request).cas
    body = await read_body(request, limit or state.config.max_json_bytes, what="JSON body")
    try:
        return json.loads(body or b"null")
    except (ValueError, RecursionError):
        raise BadHubRequest("body is not valid JSON") from None


async def form_or_json(request: Request) -> dict[str, Any]:
    """huggingface_hub posts some bodies form-encoded (``paths-info``), @huggingface/hub as
    JSON; both become a dict (repeated form keys become lists)."""
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body = await read_body(request, hub_of(request).cas.config.max_json_bytes, what="form")
        return {k: v for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    value = await json_body(request)
    if not isinstance(value, dict):
        raise BadHubRequest("expected a JSON object")
    return value


def flag(value: object) -> bool:
    """A boolean from JSON, a query string or a form (``true``, ``True``, ``1``)."""
    if isinstance(value, list):
        value = value[-1] if value else None
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)
