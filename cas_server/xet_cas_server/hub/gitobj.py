"""Git-shaped identifiers the clients expect, computed the way git computes them where the
clients compare them (blob ids of regular files: huggingface_hub skips an unchanged file
when the preupload ``oid`` equals its local git blob sha1; LFS pointers: ``pointerSize`` and
the pointer's blob id in tree listings).

Commits and folders are not real git objects here (there is no git repository behind the
API), but their ids are 40 hex digits derived from their content all the same.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable

LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"


def blob_oid(content: bytes) -> str:
    """``git hash-object`` of ``content``."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return LFS_POINTER.format(sha256=sha256, size=size).encode()


def pointer_oid(sha256: str, size: int) -> str:
    """Blob id of the LFS pointer file that stands for a large file in git."""
    return blob_oid(lfs_pointer(sha256, size))


def tree_digest(entries: Iterable[tuple[str, str]]) -> str:
    """A 40-hex id of a set of ``(path, blob oid)`` pairs (order-independent)."""
    h = hashlib.sha1()
    for path, oid in sorted(entries):
        h.update(f"{oid} {path}\n".encode())
    return h.hexdigest()


def commit_oid(
    tree: str, parent: str | None, author: str, created: float, title: str, message: str
) -> str:
    text = (
        f"tree {tree}\nparent {parent or ''}\nauthor {author} {created:.6f}\n\n{title}\n\n{message}"
    )
    return hashlib.sha1(b"commit %d\0" % len(text.encode()) + text.encode()).hexdigest()


def iso_date(ts: float) -> str:
    """``2024-05-01T12:34:56.789000Z``: the format huggingface_hub's ``parse_datetime`` reads."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}Z"
