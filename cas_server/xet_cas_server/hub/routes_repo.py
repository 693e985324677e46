"""Repository endpoints: create, info, tree, paths-info, refs, branches, commit history,
whoami, and the admin's token minting."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..httpkit import require_dev_secret
from .auth import ADMIN, ROLES
from .db import CommitRow, RepoRow, TreeEntry
from .errors import BadHubRequest, Conflict, EntryNotFound, HubUnauthorized, NoWriteAccess
from .gitobj import iso_date, lfs_pointer, tree_digest
from .http import (
    absolute,
    flag,
    form_or_json,
    hub_endpoint,
    hub_of,
    json_body,
    raw_tail,
    repo_param,
    web_repo,
)
from .names import REPO_TYPES, check_branch, check_name, check_path, parent_dirs, repo_id

TREE_PAGE = 1000
TREE_PAGE_EXPANDED = 50
COMMITS_PAGE = 50


# ---------------------------------------------------------------------------- rendering
def last_commit_json(c: CommitRow) -> dict[str, Any]:
    return {"id": c.oid, "title": c.title, "date": iso_date(c.created)}


def file_json(e: TreeEntry) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "file", "oid": e.blob.oid, "size": e.blob.size, "path": e.path}
    if e.blob.is_lfs:
        assert e.blob.sha256 is not None
        pointer = lfs_pointer(e.blob.sha256, e.blob.size)
        item["lfs"] = {"oid": e.blob.sha256, "size": e.blob.size, "pointerSize": len(pointer)}
        item["xetHash"] = e.blob.xet_hash
    return item


def listing(entries: list[TreeEntry], folder: str, recursive: bool) -> list[dict[str, Any]]:
    """Tree items under ``folder`` ("" = root): files and folders, sorted by path; only the
    direct children unless ``recursive``."""
    prefix = folder + "/" if folder else ""
    depth = prefix.count("/")
    items: dict[str, dict[str, Any]] = {}
    folders: dict[str, list[TreeEntry]] = {}
    for e in entries:
        if not e.path.startswith(prefix):
            continue
        for d in parent_dirs(e.path):
            if d.startswith(prefix) and d != folder:
                folders.setdefault(d, []).append(e)
        if recursive or e.path.count("/") == depth:
            items[e.path] = {**file_json(e), "_entry": e}
    for d, inside in folders.items():
        if recursive or d.count("/") == depth:
            oid = tree_digest((e.path[len(d) + 1 :], e.blob.oid) for e in inside)
            items[d] = {"type": "directory", "oid": oid, "size": 0, "path": d, "_inside": inside}
    return [items[k] for k in sorted(items)]


def _expand(hub_items: list[dict[str, Any]], commit_of: Any) -> list[dict[str, Any]]:
    out = []
    for item in hub_items:
        entry, inside = item.pop("_entry", None), item.pop("_inside", None)
        if commit_of is not None:
            newest = entry or max(inside, key=lambda e: commit_of(e.last_commit).created)
            item["lastCommit"] = last_commit_json(commit_of(newest.last_commit))
        out.append(item)
    return out


def _paged(request: Request, items: list[Any], page: int) -> Response:
    try:
        start = max(0, int(request.query_params.get("cursor", "0")))
    except ValueError:
        raise BadHubRequest("cursor must be an integer") from None
    headers = {}
    if start + page < len(items):
        query = {**request.query_params, "cursor": str(start + page)}
        headers["Link"] = f'<{absolute(request, request.url.path)}?{urlencode(query)}>; rel="next"'
    return JSONResponse(items[start : start + page], headers=headers)


# ---------------------------------------------------------------------------- repositories
@hub_endpoint("hub_repo")
async def create_repo(request: Request) -> Response:
    hub = hub_of(request)
    who = hub.auth.principal(request.headers)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise BadHubRequest("expected a JSON object")
    kind = body.get("type") or "model"
    if kind not in REPO_TYPES:
        raise BadHubRequest(f"type must be one of {REPO_TYPES}")
    if who.anonymous:
        raise HubUnauthorized("You must be authenticated to create a repository")
    namespace = body.get("organization") or who.user
    repo = repo_id(kind, check_name(namespace, "namespace"), check_name(body.get("name"), "name"))
    if not who.may_write_namespace(repo.namespace):
        raise NoWriteAccess(f"You don't have the rights to create a repository in {namespace}")
    private = flag(body.get("private")) or body.get("visibility") == "private"
    url = absolute(request, repo.web_path)
    created = await run_in_threadpool(hub.create_repo, repo, private, who.user or ADMIN)
    if created is None:
        conflict = Conflict(f"You already created this {kind} repo: {repo.id}")
        return JSONResponse({"error": conflict.message, "url": url}, status_code=409)
    return JSONResponse({"url": url, "name": repo.id, "id": repo.id})


def _info(request: Request, repo: RepoRow, head: str) -> dict[str, Any]:
    hub = hub_of(request)
    commit = hub.db.commit_row(repo, head)
    assert commit is not None
    blobs = flag(request.query_params.get("blobs"))
    siblings = []
    for e in hub.db.tree(head):
        sibling: dict[str, Any] = {"rfilename": e.path}
        if blobs:
            sibling.update(size=e.blob.size, blobId=e.blob.oid)
            if e.blob.is_lfs:
                pointer = lfs_pointer(e.blob.sha256 or "", e.blob.size)
                sibling["lfs"] = {
                    "sha256": e.blob.sha256,
                    "size": e.blob.size,
                    "pointerSize": len(pointer),
                }
        siblings.append(sibling)
    r = repo.repo
    info: dict[str, Any] = {
        "_id": f"{repo.pk:024x}",
        "id": r.id,
        "author": r.namespace,
        "sha": head,
        "private": repo.private,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "createdAt": iso_date(repo.created),
        "lastModified": iso_date(commit.created),
        "siblings": siblings,
    }
    if r.type == "model":
        info["modelId"] = r.id
    return info


@hub_endpoint("hub_repo")
async def repo_info(request: Request) -> Response:
    """``GET /api/{kind}/{ns}/{name}[/revision/{rev}]``"""
    hub = hub_of(request)
    repo = hub.readable(hub.auth.principal(request.headers), repo_param(request))
    head = hub.resolve(repo, request.path_params.get("rev") or "main")
    return JSONResponse(await run_in_threadpool(_info, request, repo, head))


@hub_endpoint("hub_tree")
async def tree(request: Request) -> Response:
    """``GET /api/{kind}/{ns}/{name}/tree/{rev}[/{path}]?recursive=&expand=``"""
    hub = hub_of(request)
    repo = hub.readable(hub.auth.principal(request.headers), repo_param(request))
    revision, path = raw_tail(request, "tree")
    if path:
        check_path(path)
    head = hub.resolve(repo, revision)
    recursive = flag(request.query_params.get("recursive"))
    expand = flag(request.query_params.get("expand"))

    def build() -> list[dict[str, Any]]:
        entries = hub.db.tree(head, path)
        if path and not any(e.path.startswith(path + "/") for e in entries):
            raise EntryNotFound(f"{path} is not a folder at {revision}")
        commit_of = _commit_lookup(hub, repo) if expand else None
        return _expand(listing(entries, path, recursive), commit_of)

    items = await run_in_threadpool(build)
    return _paged(request, items, TREE_PAGE_EXPANDED if expand else TREE_PAGE)


def _commit_lookup(hub: Any, repo: RepoRow) -> Any:
    cache: dict[str, CommitRow] = {}

    def get(oid: str) -> CommitRow:
        if oid not in cache:
            row = hub.db.commit_row(repo, oid)
            assert row is not None
            cache[oid] = row
        return cache[oid]

    return get


@hub_endpoint("hub_tree")
async def paths_info(request: Request) -> Response:
    """``POST /api/{kind}/{ns}/{name}/paths-info/{rev}`` ``{paths, expand}`` (JSON or form)."""
    hub = hub_of(request)
    repo = hub.readable(hub.auth.principal(request.headers), repo_param(request))
    head = hub.resolve(repo, request.path_params["rev"])
    body = await form_or_json(request)
    paths = body.get("paths") or []
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or len(paths) > 1000:
        raise BadHubRequest("'paths' must be a list of at most 1000 paths")
    wanted = [check_path(p.rstrip("/") if isinstance(p, str) else p) for p in paths]
    expand = flag(body.get("expand"))

    def build() -> list[dict[str, Any]]:
        commit_of = _commit_lookup(hub, repo) if expand else None
        out = []
        for p in dict.fromkeys(wanted):
            entries = hub.db.tree(head, p)
            exact = [e for e in entries if e.path == p]
            if exact:
                out += _expand([{**file_json(exact[0]), "_entry": exact[0]}], commit_of)
            elif entries:
                parent = p.rsplit("/", 1)[0] if "/" in p else ""
                folder = [i for i in listing(entries, parent, False) if i["path"] == p]
                out += _expand(folder, commit_of)
        return out

    return JSONResponse(await run_in_threadpool(build))


# ---------------------------------------------------------------------------- refs and history
@hub_endpoint("hub_repo")
async def refs(request: Request) -> Response:
    hub = hub_of(request)
    repo = hub.readable(hub.auth.principal(request.headers), repo_param(request))
    branches, prs = [], []
    for name, oid in hub.db.refs(repo):
        if name.startswith("refs/pr/"):
            prs.append({"name": name, "ref": name, "targetCommit": oid})
        else:
            branches.append({"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid})
    return JSONResponse({"branches": branches, "tags": [], "converts": [], "pullRequests": prs})


@hub_endpoint("hub_repo")
async def branch(request: Request) -> Response:
    """``POST`` (create from ``startingPoint`` or main's head) / ``DELETE`` a branch."""
    hub = hub_of(request)
    repo = hub.writable(hub.auth.principal(request.headers), repo_param(request))
    name = check_branch(request.path_params["branch"])
    if name.startswith("refs/"):
        raise BadHubRequest("branch names may not start with 'refs/'")
    if request.method == "DELETE":
        if name == "main":
            raise NoWriteAccess("the default branch cannot be deleted")
        if not hub.db.delete_branch(repo, name):
            raise EntryNotFound(f"no branch {name}")
        return JSONResponse({})
    body = await json_body(request) or {}
    start = body.get("startingPoint") if isinstance(body, dict) else None
    head = hub.resolve(repo, start if isinstance(start, str) else "main")
    if not hub.db.create_branch(repo, name, head):
        raise Conflict(f"Reference already exists: refs/heads/{name}")
    return JSONResponse({})


@hub_endpoint("hub_repo")
async def commit_history(request: Request) -> Response:
    """``GET /api/{kind}/{ns}/{name}/commits/{rev}``: newest first, paginated."""
    hub = hub_of(request)
    repo = hub.readable(hub.auth.principal(request.headers), repo_param(request))
    head = hub.resolve(repo, request.path_params["rev"])
    rows = await run_in_threadpool(hub.db.history, head, 0, 1_000_000)
    items = [
        {
            "id": c.oid,
            "title": c.title,
            "message": c.message,
            "authors": [{"user": c.author}],
            "date": iso_date(c.created),
            "parents": [c.parent] if c.parent else [],
        }
        for c in rows
    ]
    return _paged(request, items, COMMITS_PAGE)


@hub_endpoint("hub_repo")
async def commit_page(request: Request) -> Response:
    """``GET /{prefix}{ns}/{name}/commit/{oid}`` (where ``commitUrl`` points): the commit."""
    hub = hub_of(request)
    repo = hub.readable(hub.auth.principal(request.headers), web_repo(request))
    row = hub.db.commit_row(repo, request.path_params["oid"])
    if row is None:
        raise EntryNotFound(f"no commit {request.path_params['oid']} in {repo.repo.id}")
    files = [file_json(e) for e in hub.db.tree(row.oid)]
    parents = [row.parent] if row.parent else []
    answer = {**last_commit_json(row), "message": row.message, "author": row.author}
    return JSONResponse({**answer, "parents": parents, "files": files})


# ---------------------------------------------------------------------------- users and tokens
@hub_endpoint("hub_repo")
async def whoami(request: Request) -> Response:
    who = hub_of(request).auth.principal(request.headers)
    if who.anonymous:
        raise HubUnauthorized("Invalid username or password.")
    role = "write" if who.role == ADMIN else who.role
    return JSONResponse(
        {
            "type": "user",
            "id": who.user,
            "name": who.user,
            "fullname": who.user,
            "isPro": False,
            "canPay": False,
            "orgs": [],
            "auth": {
                "type": "access_token",
                "accessToken": {"displayName": f"{who.user}-{who.role}", "role": role},
            },
        }
    )


@hub_endpoint("hub_repo")
async def validate_yaml(request: Request) -> Response:
    """huggingface_hub asks before committing a README.md; model cards are not checked here."""
    await json_body(request)
    return JSONResponse({"errors": [], "warnings": []})


@hub_endpoint("admin")
async def mint_token(request: Request) -> Response:
    """``POST /api/_admin/tokens`` ``{user, role: read|write, name?}`` (dev secret only)."""
    require_dev_secret(request)
    body = await json_body(request)
    if not isinstance(body, dict) or body.get("role") not in ROLES:
        raise BadHubRequest(f'expected {{"user": ..., "role": one of {ROLES}}}')
    user = check_name(body.get("user"), "user")
    if user == ADMIN:
        raise BadHubRequest(f"{ADMIN!r} is the dev secret's user")
    name = body.get("name") if isinstance(body.get("name"), str) else ""
    token = await run_in_threadpool(hub_of(request).auth.mint, user, body["role"], name)
    return JSONResponse({"token": token, "user": user, "role": body["role"]})


REPO = "/api/{kind}/{ns}/{name}"
ROUTES = [
    Route("/api/repos/create", create_repo, methods=["POST"]),
    Route("/api/whoami-v2", whoami, methods=["GET"]),
    Route("/api/validate-yaml", validate_yaml, methods=["POST"]),
    Route("/api/_admin/tokens", mint_token, methods=["POST"]),
    Route(REPO, repo_info, methods=["GET"]),
    Route(REPO + "/revision/{rev:path}", repo_info, methods=["GET"]),
    Route(REPO + "/tree/{rest:path}", tree, methods=["GET"]),
    Route(REPO + "/paths-info/{rev:path}", paths_info, methods=["POST"]),
    Route(REPO + "/refs", refs, methods=["GET"]),
    Route(REPO + "/branch/{branch:path}", branch, methods=["POST", "DELETE"]),
    Route(REPO + "/commits/{rev:path}", commit_history, methods=["GET"]),
]
