"""The upload side of the Hub: preupload, Xet tokens, the LFS batch endpoint (``xet`` and
``basic`` transfers), the ``basic`` PUT itself, and the NDJSON commit."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..auth import Scope
from ..errors import PayloadTooLarge
from ..httpkit import read_body
from . import commits, content
from .auth import ADMIN
from .db import NewBlob
from .errors import BadHubRequest, HubUnauthorized, RepoNotFound
from .gitobj import pointer_oid
from .http import absolute, flag, hub_endpoint, hub_of, json_body, repo_param, web_repo
from .names import PLURALS, check_path, repo_id

#: Largest file accepted through the LFS ``basic`` transfer (S3's single-PUT limit).
MAX_LFS_PUT = 5 << 30
MAX_TOKEN_TTL = 7 * 24 * 3600


# ---------------------------------------------------------------------------- preupload
@hub_endpoint("hub_preupload")
async def preupload(request: Request) -> Response:
    """``{"files": [{path, sample, size}]}`` → ``{"files": [{path, uploadMode, shouldIgnore,
    oid}]}``; ``oid`` is what the file at that path is now (git blob id, or sha256 for large
    files), so a client can skip a file it would upload unchanged."""
    hub = hub_of(request)
    repo = hub.writable(hub.auth.principal(request.headers), repo_param(request))
    head = hub.resolve(repo, request.path_params["rev"])
    body = await json_body(request)
    files = body.get("files") if isinstance(body, dict) else None
    if not isinstance(files, list) or len(files) > 1000:
        raise BadHubRequest('expected {"files": [{"path", "sample", "size"}]} (at most 1000)')
    out = []
    for f in files:
        if not isinstance(f, dict):
            raise BadHubRequest("each file must be an object")
        path, size = check_path(f.get("path")), f.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadHubRequest(f"{path}: 'size' must be a non-negative integer")
        try:
            sample = base64.b64decode(f.get("sample") or "", validate=True)[:512]
        except (binascii.Error, ValueError, TypeError):
            raise BadHubRequest(f"{path}: 'sample' is not valid base64") from None
        entry = hub.db.entry(head, path)
        oid = None
        if entry is not None:
            oid = entry.blob.sha256 if entry.blob.is_lfs else entry.blob.oid
        mode = commits.upload_mode(size, sample)
        out.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
    return JSONResponse({"files": out, "commitOid": head})


# ---------------------------------------------------------------------------- Xet tokens
@hub_endpoint("token")
async def xet_token(request: Request) -> Response:
    """``GET /api/{kind}/{ns}/{name}/xet-{read|write}-token[/{rev}]``: a CAS token for the
    repository, as JSON (hf_xet, @huggingface/hub) *and* ``X-Xet-*`` headers (huggingface_hub).
    The revision is not checked (huggingface_hub sends ``None`` when opening a pull request).
    The dev secret also gets tokens for names that are not Hub repositories (buckets, the
    demo's repository): the CAS token endpoint's behaviour before the Hub existed."""
    hub = hub_of(request)
    params = request.path_params
    scope_name, revision = params["scope"], params.get("rev") or ""
    if scope_name not in ("read", "write"):
        raise RepoNotFound("not a token route")
    who = hub.auth.principal(request.headers)
    kind = params["kind"]
    claim = f"{kind}/{params['ns']}/{params['name']}"  # = auth.repo_key() of the repository
    known = None
    if kind in PLURALS:
        try:
            known = hub.db.repo(repo_param(request))
        except BadHubRequest:  # not a Hub repository name: only the legacy path below
            known = None
    if known is None and who.role != ADMIN:
        raise RepoNotFound(
            f"Repository not found: {params['ns']}/{params['name']}", anonymous=who.anonymous
        )
    if known is not None:
        check = hub.readable if scope_name == "read" else hub.writable
        check(who, known.repo)
    ttl = None
    if request.query_params.get("ttl"):
        try:
            ttl = int(request.query_params["ttl"])
        except ValueError:
            raise BadHubRequest("ttl must be an integer") from None
        if not 1 <= ttl <= MAX_TOKEN_TTL:
            raise BadHubRequest(f"ttl must be within [1, {MAX_TOKEN_TTL}]")
    t = hub.cas.issue_token(claim, Scope(scope_name), revision, ttl)
    return JSONResponse(t.json(), headers=t.headers())


# ---------------------------------------------------------------------------- LFS batch
def _batch_objects(body: Any) -> list[tuple[str, int]]:
    if not isinstance(body, dict) or not isinstance(body.get("objects"), list):
        raise BadHubRequest('expected {"operation": "upload", "objects": [{"oid", "size"}]}')
    if body.get("operation", "upload") != "upload":
        raise BadHubRequest("only the 'upload' operation is supported")
    if len(body["objects"]) > 1000:
        raise BadHubRequest("at most 1000 objects per batch")
    out = []
    for obj in body["objects"]:
        if not isinstance(obj, dict):
            raise BadHubRequest("each object must be {oid, size}")
        size = obj.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadHubRequest("each object needs a non-negative integer 'size'")
        out.append((commits.sha256_hex(obj.get("oid"), "'oid'"), size))
    return out


@hub_endpoint("hub_lfs_batch")
async def lfs_batch(request: Request) -> Response:
    """``POST /{prefix}{ns}/{name}.git/info/lfs/objects/batch``: ``transfer: "xet"`` when the
    client offers it (upload through the CAS with the token in ``actions.upload.header``),
    else ``basic`` (a signed URL to PUT the bytes, stored through Xet by the server).
    Objects whose content the Hub already holds get no ``actions``."""
    hub = hub_of(request)
    repo = hub.writable(hub.auth.principal(request.headers), web_repo(request)).repo
    body = await json_body(request)
    objects = _batch_objects(body)
    transfers = body.get("transfers") or ["basic"]
    use_xet = isinstance(transfers, list) and "xet" in transfers
    ref = body.get("ref") if isinstance(body.get("ref"), dict) else {}
    revision = str(ref.get("name") or "main")
    base = hub.cas.config.cas_url
    xet_header: dict[str, str] | None = None
    out = []
    for sha256, size in objects:
        item: dict[str, Any] = {"oid": sha256, "size": size}
        if size == 0 or size > MAX_LFS_PUT:
            item["error"] = {"code": 422, "message": f"size must be within [1, {MAX_LFS_PUT}]"}
        elif hub.db.blob(pointer_oid(sha256, size)) is None:
            if use_xet:
                if xet_header is None:
                    t = hub.cas.issue_token(repo.token_claim, Scope.WRITE, revision)
                    xet_header = t.headers()
                href = absolute(request, f"{repo.api_path}/xet-write-token/{revision}")
                item["actions"] = {"upload": {"href": href, "header": xet_header}}
            else:
                href = hub.lfs_put_url(base, repo, sha256, size)
                item["actions"] = {"upload": {"href": href, "header": {}}}
        out.append(item)
    answer = {"transfer": "xet" if use_xet else "basic", "objects": out, "hash_algo": "sha256"}
    return JSONResponse(answer, media_type="application/vnd.git-lfs+json")


@hub_endpoint("hub_lfs_put")
async def lfs_put(request: Request) -> Response:
    """The ``basic`` transfer's PUT (authority from the URL's signature, like a presigned S3
    URL): the body must have the signed size and the sha256 of the path; the server then
    chunks it into xorbs and a shard, exactly what a Xet client would have uploaded."""
    hub = hub_of(request)
    p, q = request.path_params, request.query_params
    repo = repo_id(PLURALS.get(p["kind"], "?"), p["ns"], p["name"])
    sha256 = commits.sha256_hex(p["sha256"], "oid")
    try:
        size, valid = hub.lfs_put_check(request.url.path, q["size"], q["expires"], q["sig"])
    except (KeyError, ValueError):
        raise HubUnauthorized("upload URL signature does not match") from None
    if not valid:
        raise HubUnauthorized("upload URL has expired")
    oid = pointer_oid(sha256, size)
    if hub.db.blob(oid) is not None:
        return Response(status_code=200)
    store = hub.cas.store
    tmp = store.objects.tmp / f"lfs-{sha256[:16]}-{secrets.token_hex(6)}"
    try:
        await _receive(request, tmp, sha256, size)
        xet_hash = await run_in_threadpool(
            content.ingest_file, store, tmp, sha256, repo.token_claim
        )
    finally:
        tmp.unlink(missing_ok=True)
    await run_in_threadpool(hub.db.add_blob, NewBlob(oid, size, sha256=sha256, xet_hash=xet_hash))
    request.scope["xcas.detail"] = {"repo": str(repo), "xet_hash": xet_hash}
    return Response(status_code=200)


async def _receive(request: Request, dest: Path, sha256: str, size: int) -> None:
    """Stream the body to ``dest``, refusing (400) one of another size or sha256."""
    digest, received = hashlib.sha256(), 0
    with open(dest, "wb") as f:
        async for piece in request.stream():
            received += len(piece)
            if received > size:
                raise PayloadTooLarge(f"body is larger than the announced {size} bytes")
            digest.update(piece)
            f.write(piece)
    if received != size:
        raise BadHubRequest(f"body has {received} bytes, {size} were announced")
    if digest.hexdigest() != sha256:
        raise BadHubRequest(f"body has sha256 {digest.hexdigest()}, not {sha256}")


# ---------------------------------------------------------------------------- commit
@hub_endpoint("hub_commit")
async def commit(request: Request) -> Response:
    """``POST /api/{kind}/{ns}/{name}/commit/{rev}`` (NDJSON, see :mod:`.commits`) →
    ``{commitOid, commitUrl, pullRequestUrl?}``. Nothing is written unless every operation is
    valid; the commit itself is one SQLite transaction."""
    hub = hub_of(request)
    who = hub.auth.principal(request.headers)
    repo = hub.writable(who, repo_param(request))
    branch = request.path_params["rev"]
    create_pr = flag(request.query_params.get("create_pr"))
    body = await read_body(request, commits.MAX_COMMIT_BYTES, what="commit payload")
    header, ops = await run_in_threadpool(commits.parse_commit, body)
    lfs: dict[str, NewBlob | str] = {}
    by_sha: dict[tuple[str, int | None], NewBlob | str] = {}
    for op in ops:
        if isinstance(op, commits.AddLfs):
            key = (op.sha256, op.size)
            if key not in by_sha:
                by_sha[key] = await run_in_threadpool(hub.lfs_blob, op.sha256, op.size, op.path)
            lfs[op.path] = by_sha[key]
    row, pr = await run_in_threadpool(
        hub.commit, repo, branch, header, ops, lfs, who.user or ADMIN, create_pr
    )
    web = repo.repo.web_path
    answer: dict[str, Any] = {
        "success": True,
        "commitOid": row.oid,
        "commitUrl": absolute(request, f"{web}/commit/{row.oid}"),
    }
    if pr is not None:
        answer["pullRequestUrl"] = absolute(request, f"{web}/discussions/{pr}")
    return JSONResponse(answer)


_REPO = "/api/{kind}/{ns}/{name}"
ROUTES = [
    Route(_REPO + "/preupload/{rev:path}", preupload, methods=["POST"]),
    Route(_REPO + "/commit/{rev:path}", commit, methods=["POST"]),
    Route(_REPO + "/xet-{scope}-token", xet_token, methods=["GET"]),
    Route(_REPO + "/xet-{scope}-token/{rev:path}", xet_token, methods=["GET"]),
    Route("/{ns}/{name}.git/info/lfs/objects/batch", lfs_batch, methods=["POST"]),
    Route("/{kind}/{ns}/{name}.git/info/lfs/objects/batch", lfs_batch, methods=["POST"]),
    Route("/_hub/lfs/{kind}/{ns}/{name}/{sha256}", lfs_put, methods=["PUT"]),
]
