"""``/{prefix}{ns}/{name}/resolve/{rev}/{path}``: a file of a repository at a revision.

* ``HEAD`` — what huggingface_hub reads before a download: ``X-Repo-Commit``, ``ETag`` (git blob
  id, or the sha256 of a large file, also as ``X-Linked-Etag``), ``X-Linked-Size``, and for Xet
  files ``X-Xet-Hash`` plus ``Link: <…/xet-read-token/{commit}>; rel="xet-auth"``.
* ``GET`` with ``Accept: application/vnd.xet-fileinfo+json`` (@huggingface/hub) — the same as a
  small JSON answer, the ``Link`` header also naming the reconstruction URL.
* plain ``GET`` — the bytes, ``Range`` honoured: regular files from the database, Xet files
  reconstructed by the server (a link in a browser works, and so do clients without Xet).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..byteranges import parse_file_range
from ..errors import RangeNotSatisfiable
from . import content
from .db import TreeEntry
from .errors import EntryNotFound
from .http import absolute, hub_endpoint, hub_of, raw_tail, web_repo
from .names import RepoId, check_path
from .routes_repo import commit_page

FILEINFO = "application/vnd.xet-fileinfo+json"


def _headers(request: Request, repo: RepoId, commit: str, e: TreeEntry) -> dict[str, str]:
    blob = e.blob
    headers = {
        "X-Repo-Commit": commit,
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'inline; filename="{e.path.rsplit("/", 1)[-1]}"'.encode(
            "ascii", "replace"
        ).decode(),
    }
    if not blob.is_lfs:
        headers["ETag"] = f'"{blob.oid}"'
        return headers
    auth = absolute(request, f"{repo.api_path}/xet-read-token/{commit}")
    info = absolute(request, f"/v2/reconstructions/{blob.xet_hash}")
    headers.update(
        {
            "ETag": f'"{blob.sha256}"',
            "X-Linked-Etag": f'"{blob.sha256}"',
            "X-Linked-Size": str(blob.size),
            "X-Xet-Hash": blob.xet_hash or "",
            "Link": f'<{auth}>; rel="xet-auth", <{info}>; rel="xet-reconstruction-info"',
        }
    )
    return headers


@hub_endpoint("hub_resolve")
async def resolve(request: Request) -> Response:
    hub = hub_of(request)
    repo = hub.readable(hub.auth.principal(request.headers), web_repo(request))
    revision, path = raw_tail(request, "resolve")
    check_path(path)
    commit = hub.resolve(repo, revision)
    entry = hub.db.entry(commit, path)
    if entry is None:
        raise EntryNotFound(f"Entry not found: {path} at {revision}")
    blob = entry.blob
    headers = _headers(request, repo.repo, commit, entry)
    if blob.is_lfs and FILEINFO in request.headers.get("accept", ""):
        body = {
            "hash": blob.xet_hash,
            "size": blob.size,
            "etag": blob.sha256,
            "refreshUrl": absolute(request, f"{repo.repo.api_path}/xet-read-token/{commit}"),
            "reconstructionUrl": absolute(request, f"/v2/reconstructions/{blob.xet_hash}"),
        }
        return JSONResponse(body, headers=headers, media_type=FILEINFO)
    rng = _range(request, blob.size)
    status = 200
    length = blob.size
    if rng is not None:
        status, length = 206, rng[1] - rng[0] + 1
        headers["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{blob.size}"
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    if not blob.is_lfs:
        data = hub.db.content(blob.oid)
        body = data[rng[0] : rng[1] + 1] if rng is not None else data
        return Response(body, status_code=status, headers=headers, media_type=_mime(path))
    assert blob.xet_hash is not None
    pieces = content.stream_file(hub.cas.store, blob.xet_hash, rng)
    return StreamingResponse(pieces, status_code=status, headers=headers, media_type=_mime(path))


def _range(request: Request, size: int) -> tuple[int, int] | None:
    header = request.headers.get("range")
    if header is None or request.method == "HEAD":
        return None
    try:
        rng = parse_file_range(header, size)
    except ValueError:
        return None  # RFC 9110 lets a server ignore a Range it does not support
    if rng is None:
        raise RangeNotSatisfiable(f"range {header!r} is outside the file ({size} bytes)", size=size)
    return rng


def _mime(path: str) -> str:
    if path.endswith((".json", ".md", ".txt", ".py", ".yaml", ".yml", ".csv")):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


ROUTES = [
    Route("/{ns}/{name}/resolve/{rest:path}", resolve, methods=["GET", "HEAD"]),
    Route("/{kind}/{ns}/{name}/resolve/{rest:path}", resolve, methods=["GET", "HEAD"]),
    Route("/{ns}/{name}/commit/{oid}", commit_page, methods=["GET"]),
    Route("/{kind}/{ns}/{name}/commit/{oid}", commit_page, methods=["GET"]),
]
