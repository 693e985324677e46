"""Where the bytes of a file to commit come from.

The upload flow (:mod:`.upload`) needs four things of a file besides its path in the
repository and its size: its first bytes (for the preupload call), its whole content when
the Hub wants it inline (small text files), its SHA-256 on its own (only to find out whether
a file the repository already holds is unchanged), and a way to stream it into an upload of a
:class:`~xet_pyodide.XetSession`. :class:`UploadSource` names them; :class:`BytesSource`
(memory) and :class:`LocalFileSource` (a file on disk) implement them, and the browser front
door adds one for a JavaScript ``Blob``/``File`` (``xet_pyodide.browser_hub``).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Protocol, runtime_checkable

from ..io.digest import sha256_in_background
from ..session import COMPUTE, FileUpload

#: Bytes read from disk at a time.
BLOCK = 8 << 20


@runtime_checkable
class UploadSource(Protocol):
    """A file to commit: ``path`` in the repository and ``size`` in bytes."""

    path: str
    size: int

    async def head(self, n: int) -> bytes:
        """The first ``n`` bytes (fewer for a shorter file)."""
        ...

    async def read_all(self) -> bytes:
        """The whole content (only asked for files the Hub wants inline: small ones)."""
        ...

    async def sha256(self) -> str:
        """The hex SHA-256, read on its own (only for files the repository may already
        hold: one extra read decides whether to upload at all)."""
        ...

    def upload_sha256(self) -> Any:
        """``sha256=`` for :meth:`XetSession.start_upload`: ``COMPUTE`` (in the upload's own
        pass) or an awaitable of the digest computed elsewhere meanwhile."""
        ...

    async def feed(self, upload: FileUpload) -> None:
        """Write every byte into ``upload`` (the caller finishes or abandons it)."""
        ...


class BytesSource:
    """A file held in memory (``bytes``, ``bytearray``, ``memoryview``)."""

    def __init__(self, path: str, data: bytes | bytearray | memoryview) -> None:
        self.path = path
        self._view = memoryview(data).cast("B")
        self.size = len(self._view)

    async def head(self, n: int) -> bytes:
        return bytes(self._view[:n])

    async def read_all(self) -> bytes:
        return bytes(self._view)

    async def sha256(self) -> str:
        return hashlib.sha256(self._view).hexdigest()

    def upload_sha256(self) -> Any:
        return sha256_in_background(self._view) or COMPUTE  # WebCrypto under Pyodide

    async def feed(self, upload: FileUpload) -> None:
        await upload.write(self._view)  # written in block_size pieces by the upload


class LocalFileSource:
    """A file on the (real, or Emscripten) file system, read in blocks of :data:`BLOCK`."""

    def __init__(self, path: str, local_path: str | os.PathLike[str]) -> None:
        self.path = path
        self.local_path = os.fspath(local_path)
        self.size = os.path.getsize(self.local_path)

    async def head(self, n: int) -> bytes:
        with open(self.local_path, "rb") as f:
            return f.read(n)

    async def read_all(self) -> bytes:
        with open(self.local_path, "rb") as f:
            return f.read()

    async def sha256(self) -> str:
        digest = hashlib.sha256()
        with open(self.local_path, "rb") as f:
            while block := f.read(BLOCK):
                digest.update(block)
        return digest.hexdigest()

    def upload_sha256(self) -> Any:
        return COMPUTE

    async def feed(self, upload: FileUpload) -> None:
        with open(self.local_path, "rb") as f:
            while block := f.read(BLOCK):
                await upload.write(block)


def as_source(item: Any) -> UploadSource:
    """An :class:`UploadSource` from what ``upload_files`` accepts: a source, a
    ``(path_in_repo, bytes | local path)`` pair, or a mapping with ``path`` and ``content``
    (bytes) or ``local_path``."""
    if isinstance(item, UploadSource):
        return item
    if isinstance(item, tuple) and len(item) == 2:
        path, content = item
    elif isinstance(item, dict) and "path" in item:
        path, content = item["path"], item.get("content", item.get("local_path"))
    else:
        raise TypeError(
            "a file to upload is (path_in_repo, bytes | local path), {'path', 'content'}, or "
            f"an UploadSource; got {type(item).__name__}"
        )
    if not isinstance(path, str) or not path:
        raise TypeError("a file's path in the repository must be a non-empty string")
    if isinstance(content, (bytes, bytearray, memoryview)):
        return BytesSource(path, content)
    if isinstance(content, (str, os.PathLike)):
        return LocalFileSource(path, content)
    raise TypeError(f"{path}: content must be bytes or a local path, not {type(content).__name__}")


__all__ = ["BytesSource", "LocalFileSource", "UploadSource", "as_source"]
