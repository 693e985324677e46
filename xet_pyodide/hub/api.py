"""The Hub's HTTP API, one method per call, as huggingface_hub and @huggingface/hub make them.

:class:`HubApi` sends every request with the Hub token (``Authorization: Bearer``) through an
:class:`~xet_pyodide.io.http.HttpClient` (retries on connection errors, 5xx and 429; never for
the commit, whose outcome a lost answer leaves unknown), and turns every refusal into a
:class:`~xet_pyodide.errors.XetHubError` subclass (:func:`hub_error`). In a browser it adds no
header of its own (``external``): the Hub's CORS rules then see only what its own clients send.
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import (
    XetHubAuthError,
    XetHubConflictError,
    XetHubError,
    XetHubNotFoundError,
    XetResponseError,
    XetServerError,
)
from ..io.http import HttpClient
from ..io.retry import RetryNotice, RetryPolicy, error_for_response
from ..io.transport import Body, Response, Transport
from .payloads import (
    PREUPLOAD_BATCH,
    CommitInfo,
    UploadMode,
    parse_commit_answer,
    parse_link_header,
    parse_preupload,
    preupload_body,
)
from .repo import RepoId, quote_path, quote_revision

FILEINFO = "application/vnd.xet-fileinfo+json"


def hub_error(resp: Response, what: str) -> XetHubError:
    """The typed error of a refused Hub request: the Hub's message (``{"error": …}`` or
    ``X-Error-Message``) and ``X-Error-Code``, the status and the request id."""
    generic = error_for_response(resp, what)  # message excerpt, request id, redaction
    message = getattr(generic, "server_message", None) or resp.headers.get("x-error-message")
    kwargs: dict[str, Any] = {
        "status": resp.status,
        "request_id": resp.request_id,
        "url": resp.url or None,
        "server_message": message,
        "error_code": resp.headers.get("x-error-code") or None,
    }
    text = f"{what} failed" + (f": {message}" if message else "")
    if resp.status in (401, 403):
        return XetHubAuthError(text, **kwargs)
    if resp.status == 404:
        return XetHubNotFoundError(text, **kwargs)
    if resp.status == 409:
        return XetHubConflictError(text, **kwargs)
    return XetHubError(text, **kwargs)


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What ``resolve`` says about a file at a revision. ``xet_hash`` is set for a file stored
    in Xet (with ``auth_url``, its read-token endpoint, and ``reconstruction_url``); other
    files are fetched from ``url``. ``etag``: the sha256 of a large file, or the git blob id
    of a regular one (what a full download is checked against)."""

    path: str
    size: int
    etag: str | None
    commit: str | None
    url: str
    xet_hash: str | None = None
    auth_url: str | None = None
    reconstruction_url: str | None = None


class HubApi:
    """The Hub at ``endpoint`` (``https://huggingface.co`` or a local server), as ``token``."""

    def __init__(
        self,
        endpoint: str,
        token: str | None,
        transport: Transport,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the Hub URL must be an absolute http(s) URL, got {endpoint!r}")
        self.endpoint = endpoint.rstrip("/")
        self.token = token or None
        self.http = HttpClient(transport, None, retry=retry)

    def announcing(self, on_retry: Callable[[RetryNotice], Any]) -> HubApi:
        """This client with each retry of its requests also told to ``on_retry`` (after the
        retry policy's own listener, if any): a shallow copy sharing the transport, the
        token and the request counters. One upload announces its Hub calls' retries in its
        own progress stream this way without changing the client the caller holds."""
        own = self.http.retry.on_retry

        async def both(notice: RetryNotice) -> None:
            for listener in (own, on_retry):
                if listener is not None:
                    result = listener(notice)
                    if inspect.isawaitable(result):
                        await result

        clone = copy.copy(self)
        clone.http = copy.copy(self.http)
        clone.http.retry = self.http.retry.announcing(both)
        return clone

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def call(
        self,
        method: str,
        url: str,
        what: str,
        *,
        body: Body | None = None,
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
        retry: RetryPolicy | None = None,
    ) -> Response:
        """Send one request (``url`` absolute, or a path on the Hub); the response if its
        status is in ``ok``, else the typed Hub error."""
        if url.startswith("/"):
            url = self.endpoint + url
        all_headers = {**self.auth_headers, **(headers or {})}
        try:
            resp = await self.http.send(
                method, url, what=what, body=body, headers=all_headers, auth=False,
                external=True, retry=retry,
            )  # fmt: skip
        except XetServerError as exc:  # retries exhausted on 5xx / 429: still the Hub's error
            if exc.status is None:
                raise
            raise XetHubError(
                f"{what} failed" + (f": {exc.server_message}" if exc.server_message else ""),
                status=exc.status,
                request_id=exc.request_id,
                url=exc.url,
                server_message=exc.server_message,
            ) from exc
        if resp.status not in ok:
            raise hub_error(resp, what)
        return resp

    # ------------------------------------------------------------------ repositories

    async def create_repo(
        self, repo: RepoId, *, private: bool | None = None, exist_ok: bool = False
    ) -> dict[str, str]:
        """``{"repoUrl", "id"}`` of a new repository (of the existing one with ``exist_ok``)."""
        namespace, name = repo.name.split("/")
        payload: dict[str, Any] = {"name": name, "organization": namespace, "type": repo.type}
        if private is not None:
            payload["private"] = bool(private)
        if repo.type == "space":
            payload["sdk"] = "static"
        body = json.dumps(payload).encode()
        json_type = {"Content-Type": "application/json"}
        ok = (200, 201, 409) if exist_ok else (200, 201)
        resp = await self.call(
            "POST", "/api/repos/create", "create repository", body=body, headers=json_type, ok=ok
        )
        data = _json(resp, "create repository")
        url = data.get("url") if isinstance(data, dict) else None
        return {"repoUrl": url or self.endpoint + repo.web_path, "id": repo.name}

    async def revision_sha(self, repo: RepoId, revision: str) -> str:
        """The commit id a revision (branch, ``refs/pr/N``, commit) points at."""
        path = f"{repo.api_path}/revision/{quote_revision(revision)}"
        data = _json(await self.call("GET", path, "repository info"), "repository info")
        sha = data.get("sha") if isinstance(data, dict) else None
        if not isinstance(sha, str):
            raise XetResponseError("the repository info has no 'sha'", url=self.endpoint + path)
        return sha

    async def list_files(
        self,
        repo: RepoId,
        revision: str = "main",
        path: str = "",
        *,
        recursive: bool = False,
        expand: bool = False,
    ) -> AsyncIterator[dict[str, Any]]:
        """The tree entries under ``path`` (``{type, path, size, oid, lfs?, xetHash?,
        lastCommit?}``), page after page (``Link: <…>; rel="next"``)."""
        url: str | None = (
            f"{repo.api_path}/tree/{quote_revision(revision)}"
            + (f"/{quote_path(path.strip('/'))}" if path.strip("/") else "")
            + f"?recursive={str(recursive).lower()}&expand={str(expand).lower()}"
        )
        while url:
            resp = await self.call("GET", url, "list files")
            items = _json(resp, "list files")
            if not isinstance(items, list):
                raise XetResponseError("the tree answer is not a list", url=resp.url)
            for item in items:
                yield item
            url = parse_link_header(resp.headers.get("link", "")).get("next")

    # ------------------------------------------------------------------ uploads

    async def preupload(
        self, repo: RepoId, revision: str, files: list[tuple[str, int, bytes]]
    ) -> dict[str, UploadMode]:
        """Upload modes of ``files`` (path, size, first bytes), in batches."""
        out: dict[str, UploadMode] = {}
        path = f"{repo.api_path}/preupload/{quote_revision(revision)}"
        for start in range(0, len(files), PREUPLOAD_BATCH):
            batch = files[start : start + PREUPLOAD_BATCH]
            resp = await self.call(
                "POST", path, "preupload", body=preupload_body(batch),
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
            out.update(parse_preupload(resp.body, [f[0] for f in batch], resp.url))
        return out

    def token_url(self, repo: RepoId, scope: str, revision: str) -> str:
        """The repository's Xet token endpoint (``scope``: ``read`` | ``write``)."""
        return f"{self.endpoint}{repo.api_path}/xet-{scope}-token/{quote_revision(revision)}"

    async def commit(self, repo: RepoId, branch: str, payload: bytes) -> CommitInfo:
        """Post an NDJSON commit (:func:`~xet_pyodide.hub.payloads.commit_body`). Sent once:
        a retry after a lost answer could commit twice."""
        path = f"{repo.api_path}/commit/{quote_revision(branch)}"
        resp = await self.call(
            "POST", path, "commit", body=payload,
            headers={"Content-Type": "application/x-ndjson"},
            retry=self.http.retry.with_attempts(1),
        )  # fmt: skip
        return parse_commit_answer(resp.body, resp.url)

    # ------------------------------------------------------------------ downloads

    def resolve_url(self, repo: RepoId, path: str, revision: str) -> str:
        return (
            f"{self.endpoint}{repo.web_path}/resolve/{quote_revision(revision)}/{quote_path(path)}"
        )

    async def file_info(self, repo: RepoId, path: str, revision: str = "main") -> FileInfo:
        """Resolve ``path`` as @huggingface/hub does: ``GET …/resolve/…`` with ``Range:
        bytes=0-0`` and ``Accept: application/vnd.xet-fileinfo+json, */*``. A Xet file answers
        its hash, size and links; any other file one byte and its size (``Content-Range``).
        A missing file is a :class:`~xet_pyodide.errors.XetHubNotFoundError`."""
        url = self.resolve_url(repo, path, revision)
        headers = {"Range": "bytes=0-0", "Accept": f"{FILEINFO}, */*"}
        resp = await self.call("GET", url, f"resolve {path}", headers=headers, ok=(200, 206, 416))
        h = resp.headers
        etag = (h.get("x-linked-etag") or h.get("etag") or "").removeprefix("W/").strip('"')
        commit = h.get("x-repo-commit")
        if FILEINFO in h.get("content-type", ""):
            return _xet_file_info(resp, path, url, etag, commit)
        size = _content_range_size(h.get("content-range"))
        if size is None and resp.status == 200:
            size = len(resp.body)  # a server that ignored the Range: the whole file came
        if size is None:
            raise XetResponseError(f"resolve {path}: no size in the answer", url=url)
        # After a redirect to another host (a CDN's signed URL), fetch from the resolve URL
        # again rather than from there: the Hub token must not go to that host.
        final = resp.url if resp.url and _origin(resp.url) == _origin(url) else url
        return FileInfo(path, size, etag or None, commit, final)

    async def get_content(self, info: FileInfo, byte_range: tuple[int, int] | None) -> bytes:
        """The bytes of a non-Xet file (or ``byte_range``, inclusive), from its resolve URL."""
        headers = {"Range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else None
        resp = await self.call("GET", info.url, f"download {info.path}", headers=headers,
                               ok=(200, 206))  # fmt: skip
        if byte_range is not None and resp.status == 200:
            return resp.body[byte_range[0] : byte_range[1] + 1]
        return resp.body

    async def aclose(self) -> None:
        await self.http.aclose()


def _xet_file_info(resp: Response, path: str, url: str, etag: str, commit: str | None) -> FileInfo:
    h = resp.headers
    links = parse_link_header(h.get("link", ""))
    try:
        body = json.loads(resp.body) if resp.body else {}
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    size_text = h.get("x-linked-size") or str(body.get("size", ""))
    xet_hash = h.get("x-xet-hash") or body.get("hash")
    auth_url = links.get("xet-auth") or body.get("refreshUrl")
    if not size_text.isdigit() or not xet_hash or not auth_url:
        raise XetResponseError(
            f"resolve {path}: the Xet file info lacks its size, hash or xet-auth link", url=url
        )
    reconstruction = links.get("xet-reconstruction-info") or body.get("reconstructionUrl")
    return FileInfo(
        path, int(size_text), etag or None, commit, url, str(xet_hash), str(auth_url),
        reconstruction,
    )  # fmt: skip


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _content_range_size(value: str | None) -> int | None:
    """The total of ``Content-Range: bytes 0-0/SIZE`` (or ``bytes */SIZE``)."""
    if not value or "/" not in value:
        return None
    total = value.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def _json(resp: Response, what: str) -> Any:
    try:
        return json.loads(resp.body)
    except (ValueError, RecursionError):
        raise XetResponseError(f"the {what} answer is not JSON", url=resp.url) from None


__all__ = ["FILEINFO", "FileInfo", "HubApi", "hub_error"]
