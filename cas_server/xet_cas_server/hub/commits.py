"""The commit payload (``POST /api/{type}s/{repo}/commit/{revision}``, NDJSON) and how its
operations change a file list. No I/O here: parsing, validation and the pure "apply" step.

Lines, each ``{"key": K, "value": {...}}``:

* ``header`` (first line): ``summary``, ``description``, optional ``parentCommit``;
* ``file``: ``path``, ``content`` (base64, or text with ``encoding: "utf-8"``) — stored inline;
* ``lfsFile``: ``path``, ``algo: "sha256"``, ``oid`` (sha256 hex), ``size`` — a large file the
  client uploaded through Xet (or the LFS ``basic`` transfer) beforehand;
* ``deletedFile`` / ``deletedFolder``: ``path``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from .errors import BadHubRequest, EntryNotFound
from .gitobj import blob_oid
from .names import COMMIT_OID, check_path, parent_dirs

#: Largest commit payload (inline files travel base64-encoded inside it).
MAX_COMMIT_BYTES = 64 << 20
#: Largest inline ("regular") file; larger content belongs in Xet.
MAX_INLINE_FILE = 10 << 20
#: Files at least this large, or binary (a NUL byte in the first 512 bytes), are sent to Xet.
LFS_THRESHOLD = 10 << 20
MAX_OPERATIONS = 100_000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Header:
    summary: str
    description: str
    parent_commit: str | None


@dataclass(frozen=True)
class AddInline:
    path: str
    content: bytes

    @property
    def oid(self) -> str:
        return blob_oid(self.content)


@dataclass(frozen=True)
class AddLfs:
    path: str
    sha256: str
    size: int | None


@dataclass(frozen=True)
class Delete:
    path: str
    folder: bool


Operation = AddInline | AddLfs | Delete


def upload_mode(size: int, sample: bytes) -> str:
    """The preupload verdict: ``"lfs"`` (Xet) for large or binary files, else ``"regular"``."""
    if size == 0:
        return "regular"
    return "lfs" if size >= LFS_THRESHOLD or b"\0" in sample else "regular"


def sha256_hex(value: object, what: str) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise BadHubRequest(f"{what} must be a sha256 (64 lowercase hex digits)")
    return value


def parse_commit(body: bytes) -> tuple[Header, list[Operation]]:
    lines = [line for line in body.split(b"\n") if line.strip()]
    if not lines:
        raise BadHubRequest("empty commit payload")
    if len(lines) > MAX_OPERATIONS + 1:
        raise BadHubRequest(f"a commit holds at most {MAX_OPERATIONS} operations")
    items = [_line(n, line) for n, line in enumerate(lines, 1)]
    key, value = items[0]
    if key != "header":
        raise BadHubRequest("the first line of a commit must be its header")
    header = _header(value)
    ops = [_operation(n, key, value) for n, (key, value) in enumerate(items[1:], 2)]
    return header, ops


def _line(n: int, line: bytes) -> tuple[str, dict[str, object]]:
    try:
        item = json.loads(line)
    except (ValueError, RecursionError):
        raise BadHubRequest(f"commit line {n} is not valid JSON") from None
    if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
        raise BadHubRequest(f'commit line {n} must be {{"key": ..., "value": {{...}}}}')
    return str(item.get("key")), item["value"]


def _header(value: dict[str, object]) -> Header:
    summary = value.get("summary")
    description = value.get("description") or ""
    parent = value.get("parentCommit")
    if not isinstance(summary, str) or not summary.strip():
        raise BadHubRequest("the commit header needs a non-empty 'summary'")
    if not isinstance(description, str):
        raise BadHubRequest("'description' must be a string")
    if parent is not None and (not isinstance(parent, str) or not COMMIT_OID.match(parent)):
        raise BadHubRequest("'parentCommit' must be a 40-hex commit id")
    return Header(summary.strip(), description, parent)


def _operation(n: int, key: str, value: dict[str, object]) -> Operation:
    if key == "file":
        path = check_path(value.get("path"))
        return AddInline(path, _inline_content(path, value))
    if key == "lfsFile":
        path = check_path(value.get("path"))
        if value.get("algo", "sha256") != "sha256":
            raise BadHubRequest(f"{path}: only algo 'sha256' is supported")
        size = value.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise BadHubRequest(f"{path}: 'size' must be a non-negative integer")
        return AddLfs(path, sha256_hex(value.get("oid"), f"{path}: 'oid'"), size)
    if key in ("deletedFile", "deletedFolder"):
        raw = value.get("path")
        if key == "deletedFolder" and isinstance(raw, str):
            raw = raw.rstrip("/")
        return Delete(check_path(raw), key == "deletedFolder")
    raise BadHubRequest(f"commit line {n}: unknown operation {key!r}")


def _inline_content(path: str, value: dict[str, object]) -> bytes:
    content, encoding = value.get("content"), value.get("encoding", "base64")
    if not isinstance(content, str):
        raise BadHubRequest(f"{path}: 'content' must be a string")
    if encoding == "base64":
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise BadHubRequest(f"{path}: 'content' is not valid base64") from None
    elif encoding == "utf-8":
        data = content.encode("utf-8", "surrogatepass")
    else:
        raise BadHubRequest(f"{path}: unknown encoding {encoding!r}")
    if len(data) > MAX_INLINE_FILE:
        raise BadHubRequest(f"{path}: inline files are limited to {MAX_INLINE_FILE} bytes")
    return data


def apply(files: dict[str, str], ops: list[Operation], lfs_oids: dict[str, str]) -> dict[str, str]:
    """The file list ``path → blob oid`` after ``ops`` (in order). ``lfs_oids`` maps each
    ``AddLfs`` path to its (pointer) blob oid. Raises for deleting what is not there and for a
    path that would be both a file and a folder."""
    out = dict(files)
    for op in ops:
        if isinstance(op, AddInline):
            out[op.path] = op.oid
        elif isinstance(op, AddLfs):
            out[op.path] = lfs_oids[op.path]
        elif op.folder:
            inside = [p for p in out if p.startswith(op.path + "/")]
            if not inside:
                raise EntryNotFound(f"A folder with this name doesn't exist: {op.path}")
            for p in inside:
                del out[p]
        else:
            if op.path not in out:
                raise EntryNotFound(f"A file with this name doesn't exist: {op.path}")
            del out[op.path]
    folders = {d for p in out for d in parent_dirs(p)}
    clash = sorted(folders & out.keys())
    if clash:
        raise BadHubRequest(f"{clash[0]!r} would be both a file and a folder")
    return out
