"""What the Hub API sends and answers, as pure functions (no I/O): the preupload request and
its answer, the NDJSON commit payload, the commit answer, ``Link`` headers, git blob ids.

The shapes are those huggingface_hub and @huggingface/hub use (see ``docs/hub.md``):

* preupload: ``{"files": [{path, sample (base64 of the first 512 bytes), size}]}`` →
  ``{"files": [{path, uploadMode: "lfs" | "regular", shouldIgnore, oid}]}``;
* commit (``application/x-ndjson``), one JSON object per line: ``{"key": "header", "value":
  {summary, description, parentCommit?}}``, then ``{"key": "lfsFile", "value": {path, algo:
  "sha256", oid, size}}`` for content uploaded through Xet and ``{"key": "file", "value":
  {content (base64), path, encoding: "base64"}}`` for content sent inline →
  ``{commitOid, commitUrl, pullRequestUrl?}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import XetResponseError

#: Bytes of a file the preupload call sees (the Hub looks for a NUL byte in them).
SAMPLE_BYTES = 512
#: Files per preupload request (huggingface_hub sends 256 at a time).
PREUPLOAD_BATCH = 256
_COMMIT_OID = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True, slots=True)
class UploadMode:
    """The preupload verdict for one path: ``mode`` is ``"lfs"`` (content goes through Xet,
    the commit names its sha256) or ``"regular"`` (content goes inline in the commit);
    ``should_ignore``: the Hub's ``.gitignore`` excludes it; ``oid``: what the path holds
    now (sha256 for a large file, git blob id for a regular one; None when absent)."""

    path: str
    mode: str
    should_ignore: bool
    oid: str | None


def preupload_body(files: list[tuple[str, int, bytes]]) -> bytes:
    """``files``: (path in repo, size, first bytes)."""
    entries = [
        {
            "path": path,
            "sample": base64.b64encode(sample[:SAMPLE_BYTES]).decode("ascii"),
            "size": size,
        }
        for path, size, sample in files
    ]
    return json.dumps({"files": entries}).encode()


def parse_preupload(body: bytes, paths: list[str], url: str) -> dict[str, UploadMode]:
    """The preupload answer for ``paths``; a missing path or malformed entry is a
    :class:`~xet_pyodide.errors.XetResponseError`."""
    data = _json(body, "preupload", url)
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        raise XetResponseError("preupload answered without a 'files' list", url=url)
    out: dict[str, UploadMode] = {}
    for item in files:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise XetResponseError("preupload answered a file entry without a path", url=url)
        mode = item.get("uploadMode")
        if mode not in ("lfs", "regular"):
            raise XetResponseError(f"preupload: unknown uploadMode {mode!r}", url=url)
        oid = item.get("oid") if isinstance(item.get("oid"), str) else None
        out[item["path"]] = UploadMode(item["path"], mode, bool(item.get("shouldIgnore")), oid)
    missing = [p for p in paths if p not in out]
    if missing:
        raise XetResponseError(f"preupload answered nothing for {missing[0]!r}", url=url)
    return out


@dataclass(frozen=True, slots=True)
class LfsAddition:
    """A file whose content the Hub finds through its sha256 (uploaded through Xet)."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class InlineAddition:
    """A small text file sent inside the commit."""

    path: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Deletion:
    path: str
    folder: bool = False


Operation = LfsAddition | InlineAddition | Deletion


def commit_body(
    summary: str,
    operations: list[Operation],
    description: str = "",
    parent_commit: str | None = None,
) -> bytes:
    """The NDJSON commit payload (one line per operation after the header)."""
    header: dict[str, Any] = {"summary": summary, "description": description}
    if parent_commit is not None:
        if not _COMMIT_OID.match(parent_commit):
            raise ValueError(f"parent_commit must be a 40-hex commit id, got {parent_commit!r}")
        header["parentCommit"] = parent_commit
    lines: list[dict[str, Any]] = [{"key": "header", "value": header}]
    for op in operations:
        if isinstance(op, LfsAddition):
            value = {"path": op.path, "algo": "sha256", "oid": op.sha256, "size": op.size}
            lines.append({"key": "lfsFile", "value": value})
        elif isinstance(op, InlineAddition):
            content = base64.b64encode(op.content).decode("ascii")
            value = {"content": content, "path": op.path, "encoding": "base64"}
            lines.append({"key": "file", "value": value})
        else:
            key = "deletedFolder" if op.folder else "deletedFile"
            lines.append({"key": key, "value": {"path": op.path}})
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """The Hub's answer to a commit: the new commit's id and page, and the pull request's
    page when the commit opened one."""

    oid: str
    url: str
    pull_request_url: str | None = None


def parse_commit_answer(body: bytes, url: str) -> CommitInfo:
    data = _json(body, "commit", url)
    oid = data.get("commitOid") if isinstance(data, dict) else None
    if not isinstance(oid, str) or not _COMMIT_OID.match(oid):
        raise XetResponseError("the commit answer has no 40-hex 'commitOid'", url=url)
    pr = data.get("pullRequestUrl")
    return CommitInfo(oid, str(data.get("commitUrl") or ""), pr if isinstance(pr, str) else None)


def git_blob_oid(content: bytes) -> str:
    """The git blob id of ``content`` (SHA-1 of ``blob <size>\\0`` + content): what the Hub
    calls a regular file's ``oid`` and ``ETag``."""
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(b"blob %d\0" % len(content))
    digest.update(content)
    return digest.hexdigest()


_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")
_REL = re.compile(r'rel\s*=\s*"?([^";]+)"?')


def parse_link_header(value: str) -> dict[str, str]:
    """``rel → URL`` of a ``Link`` header (``<u1>; rel="a", <u2>; rel="b c"``)."""
    out: dict[str, str] = {}
    for match in _LINK.finditer(value or ""):
        rel = _REL.search(match.group(2))
        if rel:
            for name in rel.group(1).split():
                out.setdefault(name, match.group(1))
    return out


def _json(body: bytes, what: str, url: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise XetResponseError(f"the {what} answer is not JSON", url=url) from None


__all__ = [
    "PREUPLOAD_BATCH",
    "SAMPLE_BYTES",
    "CommitInfo",
    "Deletion",
    "InlineAddition",
    "LfsAddition",
    "Operation",
    "UploadMode",
    "commit_body",
    "git_blob_oid",
    "parse_commit_answer",
    "parse_link_header",
    "parse_preupload",
    "preupload_body",
]
