"""Reading a JavaScript ``Blob``/``File`` as a stream of bounded blocks (Pyodide).

``blob.slice(a, b).arrayBuffer()`` reads one block at a time, so a multi-GiB ``File`` never
becomes one buffer. A couple of reads run ahead while the consumer processes the current
block: the browser's file reads overlap our chunking, and backpressure is automatic (a new
read only starts when the consumer takes a block), so memory stays at a few blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from ..errors import XetReadError
from .jsinterop import js_copy_into, js_uint8array_copy
from .worker_decode import BlobPiece

MIB = 1 << 20
#: Default block size of Blob reads.
BLOB_BLOCK = 16 * MIB
#: Reads kept in flight while the consumer works on the current block.
READ_AHEAD = 2


def describe_js_value(value: Any) -> str:
    """What a value passed from JavaScript is, for error messages ("a string", "Uint8Array")."""
    if value is None:
        return "undefined or null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    constructor = getattr(getattr(value, "constructor", None), "name", None)
    return str(constructor) if constructor else type(value).__name__


def require_blob(value: Any, call: str) -> Any:
    """``value`` if it is a ``File``/``Blob`` (or quacks like one), else a clear TypeError."""
    if all(hasattr(value, name) for name in ("size", "slice", "arrayBuffer")):
        return value
    hint = " (bytes in memory go to uploadBytes)" if call == "uploadFile" else ""
    raise TypeError(f"{call} expects a File or Blob, got {describe_js_value(value)}{hint}")


def blob_size(blob: Any) -> int:
    """Size in bytes of a JS ``Blob``/``File``."""
    return int(blob.size)


def blob_name(blob: Any) -> str | None:
    """``File.name`` (``None`` for a plain ``Blob`` or an empty name)."""
    name = getattr(blob, "name", None)
    return str(name) if name else None


def blob_read_error(detail: str) -> XetReadError:
    """The error for a failed ``Blob``/``File`` read (``detail``: the browser's reason)."""
    return XetReadError(
        f"cannot read the File/Blob ({detail}); a file that was changed, moved or deleted "
        "after it was chosen can no longer be read: choose it again"
    )


async def read_slice(blob: Any, start: int, end: int) -> bytes:
    """``blob[start:end]`` as ``bytes``, or :class:`~xet_pyodide.errors.XetReadError`."""
    return await _checked(blob.slice(start, end).arrayBuffer(), end - start)


async def _checked(read: Any, length: int) -> bytes:
    try:
        data = (await read).to_bytes()
    except Exception as exc:  # a JsException: NotReadableError, NotFoundError, ...
        raise blob_read_error(_js_error_text(exc)) from None
    if len(data) != length:
        raise blob_read_error(f"{length} bytes expected, {len(data)} read")
    return data


def _js_error_text(exc: BaseException) -> str:
    """``Name: message`` of a JS error seen from Python (``JsException``)."""
    js_error = getattr(exc, "js_error", None)
    name = getattr(js_error, "name", None)
    message = getattr(js_error, "message", None)
    if name and message is not None:
        return f"{name}: {message}"
    return str(exc)


async def read_blob(blob: Any, *, block_size: int = BLOB_BLOCK) -> AsyncIterator[bytes]:
    """Yield ``blob`` as Python ``bytes`` of ``block_size`` bytes (the last may be shorter),
    keeping :data:`READ_AHEAD` ``slice().arrayBuffer()`` reads in flight. A failed or short
    read raises :class:`~xet_pyodide.errors.XetReadError`."""
    if block_size <= 0:
        raise ValueError("block_size must be positive")
    stop = blob_size(blob)
    pending: deque[tuple[Any, int]] = deque()
    pos = 0
    try:
        while pos < stop or pending:
            while pos < stop and len(pending) < READ_AHEAD:
                end = min(pos + block_size, stop)
                pending.append((blob.slice(pos, end).arrayBuffer(), end - pos))
                pos = end
            yield await _checked(*pending.popleft())
    finally:
        for read, _ in pending:  # stopped early: no unhandled rejections from reads ahead
            _quiet(read)


def _quiet(promise: Any) -> None:
    """Give a JS promise nobody will await a no-op rejection handler (no "Uncaught (in
    promise)" in the console)."""
    with contextlib.suppress(Exception):  # ImportError outside Pyodide: nothing to do
        from pyodide.ffi import create_once_callable  # type: ignore[import-not-found]

        promise.catch(create_once_callable(lambda _error: None))


# --------------------------------------------------------------------------- downloads


def parse_range(value: Any) -> tuple[int, int] | None:
    """A JS ``range`` option — ``{start, end}`` or ``[start, end]`` (end exclusive) — as a
    tuple; ``None`` when absent."""
    if value is None:
        return None
    if hasattr(value, "to_py") and not hasattr(value, "start"):
        value = value.to_py()
    if isinstance(value, (list, tuple)):
        start, end = value
    elif isinstance(value, dict):
        start, end = value.get("start"), value.get("end")
    else:
        start, end = getattr(value, "start", None), getattr(value, "end", None)
    if start is None or end is None:
        raise ValueError("range must be {start, end} or [start, end] (end exclusive)")
    return int(start), int(end)


def _download_kwargs(options: Any) -> dict[str, Any]:
    from .jsbridge import camel_keys, notify, option

    kwargs: dict[str, Any] = {}
    byte_range = parse_range(option(options, "range"))
    if byte_range is not None:
        start, end = byte_range
        if end <= start:
            raise ValueError(f"range {{start: {start}, end: {end}}} is empty (end is exclusive)")
        kwargs["byte_range"] = (start, end - 1)  # the session's ranges are inclusive (HTTP)
    listener = option(options, "onProgress")
    if listener is not None:

        async def progress(event: Any) -> None:
            await notify(listener, camel_keys(event))

        kwargs["progress"] = progress
    return kwargs


def _require_downloads(session: Any) -> None:
    if not hasattr(session, "download_pieces"):
        raise NotImplementedError("downloads are not available in this xet_pyodide build")


#: ``downloadStream`` pieces are at most ``blockSize`` bytes, this by default; also the size
#: of the staging buffer that gathers small pieces for a Blob.
BLOB_PART = 8 * MIB
#: Pieces of at least this size become Blobs straight from Python's memory (the Blob
#: constructor copies them out of the wasm heap: no intermediate JS buffer); smaller pieces
#: are gathered in one reused staging buffer of ``BLOB_PART`` bytes first.
BLOB_DIRECT = 1 * MIB
#: Largest Blob made straight from Python's memory (measured: 32 MiB items made
#: ``downloadToBlob`` ~10% faster than 8 MiB ones; 64 MiB no faster).
BLOB_ITEM = 32 * MIB


#: Default ``maxBlobBytes`` of ``downloadToBlob``: the largest download it makes into a Blob.
#: Chromium keeps Blob data in the browser process and, measured in a fresh (Incognito-like)
#: context on a 24 GiB machine, refuses more than 448–496 MiB of it in total (reads of a Blob
#: past that fail with ``NotReadableError``; an on-disk profile measured the same when Blobs
#: are made quickly); uploads in flight may hold up to 256 MiB meanwhile. Hence 256 MiB here,
#: and ``downloadStream`` (no Blob) for anything larger.
MAX_BLOB_DOWNLOAD = 256 * MIB


def check_blob_size(size: int, options: Any) -> None:
    """Raise :class:`~xet_pyodide.errors.XetBlobLimitError` when a ``downloadToBlob`` of
    ``size`` bytes (the range's length for a range) exceeds ``maxBlobBytes``."""
    from ..errors import XetBlobLimitError
    from .jsbridge import option

    limit = option(options, "maxBlobBytes", MAX_BLOB_DOWNLOAD)
    limit = float(limit)  # Infinity: no limit
    byte_range = parse_range(option(options, "range"))
    if byte_range is not None:
        size = max(0, min(byte_range[1], size) - byte_range[0])
    if size > limit:
        raise XetBlobLimitError(
            f"downloadToBlob of {size / MIB:.0f} MiB exceeds maxBlobBytes "
            f"({limit / MIB:.0f} MiB): the browser keeps a Blob's bytes in memory and may "
            "refuse this much (Incognito and fresh profiles fail near 0.5 GiB); use "
            "downloadStream (hub: downloadFileStream), or raise maxBlobBytes if this browser "
            "is known to hold it"
        )


async def download_to_blob(session: Any, file_hash: str, size: int, options: Any) -> Any:
    """Download a file (or a ``range`` of it) into a JS ``Blob`` made of Blobs of at most
    32 MiB (the browser keeps Blob data outside the page, so the page holds little of it at
    a time). A download larger than ``maxBlobBytes`` (:data:`MAX_BLOB_DOWNLOAD`) fails first
    with :class:`~xet_pyodide.errors.XetBlobLimitError`: see :func:`check_blob_size`.

    Every byte is copied once, from the decoded ranges straight into Blob storage — by the
    pool worker that read and decoded the range, when the session's workers read the bodies
    and there is no chunk cache (``blob_pieces``: the page then only references the workers'
    Blobs), else from this heap. The Blob is only created after the iterator finished,
    i.e. after a full download was verified.
    Like ``download_bytes``, a verification failure that involved cached bytes (now dropped
    from the cache) is retried once from the network."""
    from ..errors import XetIntegrityError
    from .jsbridge import option

    _require_downloads(session)
    check_blob_size(size, options)
    kind = option(options, "type", "application/octet-stream")
    # blob_pieces: ranges whose bodies the pool's workers read are decoded there into Blobs
    # (the decoded bytes never enter this heap); the other ranges come as memoryviews.
    kwargs = {**_download_kwargs(options), "blob_pieces": True}
    try:
        return await _blob_of(session.download_pieces(file_hash, size, **kwargs), kind)
    except XetIntegrityError:
        stats = getattr(session, "last_download", None)
        if stats is None or not stats.cache_hits:
            raise
    return await _blob_of(session.download_pieces(file_hash, size, **kwargs), kind)


def blob_from_memory(data: bytes | bytearray | memoryview) -> Any:
    """A JS ``Blob`` of a Python buffer, copied once: the constructor reads it in place in
    the wasm heap (through a ``PyProxy`` buffer view, released right after)."""
    import js  # type: ignore[import-not-found]
    from pyodide.ffi import create_proxy  # type: ignore[import-not-found]

    proxy = create_proxy(memoryview(data).cast("B"))
    try:
        buffer = proxy.getBuffer("u8")
        try:
            return js.Blob.new(js.Array.of(buffer.data))
        finally:
            buffer.release()
    finally:
        proxy.destroy()


class _BlobBuilder:
    """Blobs of at most ``BLOB_ITEM`` bytes, in order (see :data:`BLOB_DIRECT`)."""

    def __init__(self) -> None:
        import js  # type: ignore[import-not-found]

        self.blobs = js.Array.new()
        self._staging: Any = None
        self._fill = 0

    def add(self, piece: bytes | bytearray | memoryview | BlobPiece) -> None:
        if isinstance(piece, BlobPiece):  # Blobs (or slices) a worker made: referenced
            self.flush()
            for blob in piece.blobs:
                self.blobs.push(blob)
            return
        view = memoryview(piece).cast("B")
        if len(view) >= BLOB_DIRECT:
            self.flush()
            for start in range(0, len(view), BLOB_ITEM):
                self.blobs.push(blob_from_memory(view[start : start + BLOB_ITEM]))
            return
        while len(view):
            if self._staging is None:
                import js  # type: ignore[import-not-found]

                self._staging = js.Uint8Array.new(BLOB_PART)
            n = min(len(view), BLOB_PART - self._fill)
            js_copy_into(self._staging.buffer, self._fill, view[:n])
            self._fill += n
            view = view[n:]
            if self._fill == BLOB_PART:
                self.flush()

    def flush(self) -> None:
        """Turn the staged bytes into a Blob (which copies them: the buffer is reused)."""
        if self._fill:
            import js  # type: ignore[import-not-found]

            self.blobs.push(js.Blob.new(js.Array.of(self._staging.subarray(0, self._fill))))
            self._fill = 0


async def _blob_of(pieces: AsyncIterator[Any], kind: str) -> Any:
    import js  # type: ignore[import-not-found]

    builder = _BlobBuilder()
    # closed right away if this is cancelled (an AbortSignal): its fetches stop now
    async with contextlib.aclosing(pieces):
        async for piece in pieces:
            builder.add(piece)
    builder.flush()
    return js.Blob.new(builder.blobs, _blob_options(kind))


def _blob_options(kind: str) -> Any:
    import js  # type: ignore[import-not-found]

    options = js.Object.new()
    options.type = kind
    return options


class DownloadReader:
    """Pull-based reader behind the JS ``ReadableStream`` of ``downloadStream``:
    ``await read()`` → ``Uint8Array`` (at most ``block`` bytes) or ``None`` at the end;
    ``await cancel()``.

    The final bytes are held back until the download's iterator has finished (for a full
    download: until the file hash matched), so a stream whose data is wrong errors before it
    delivers its end."""

    def __init__(self, pieces: AsyncIterator[memoryview], block: int = BLOB_PART) -> None:
        self._pieces = pieces
        self._block = max(1, block)
        self._current: memoryview | None = None
        self._next: memoryview | None = None
        self._done = False
        self._cancelled = False
        self._reading: asyncio.Task[Any] | None = None

    async def _pull(self) -> memoryview | None:
        """The next non-empty piece, or None (and ``_done``) when the iterator finished."""
        async for piece in self._pieces:
            if len(piece):
                return memoryview(piece).cast("B")
        self._done = True
        return None

    async def read(self) -> Any:
        """The next piece; ``None`` at the end, or once :meth:`cancel` was called (also for a
        read pending when it was)."""
        if self._cancelled:
            return None
        task = self._reading = asyncio.ensure_future(self._read())
        try:
            return await task
        except asyncio.CancelledError:
            if self._cancelled and task.cancelled():
                return None
            raise
        finally:
            self._reading = None

    async def _read(self) -> Any:
        if not self._current:
            self._current, self._next = self._next, None
            if self._current is None and not self._done:
                self._current = await self._pull()
            if self._current is None:
                return None
        current = self._current
        if len(current) > self._block:
            self._current = current[self._block :]
            return js_uint8array_copy(current[: self._block])
        if not self._done and self._next is None:
            self._next = await self._pull()  # the end is released only once verified
        self._current = None
        return js_uint8array_copy(current)

    async def cancel(self) -> None:
        """Stop the download (its fetches end). Safe while a :meth:`read` is pending (a
        stream may be cancelled or aborted mid-pull): that read is cancelled first, since a
        running generator cannot be closed."""
        self._cancelled = True
        reading = self._reading
        if reading is not None:
            reading.cancel()
            await asyncio.wait({reading})  # its outcome is read()'s to report
        aclose = getattr(self._pieces, "aclose", None)
        if aclose is not None:
            await aclose()


async def open_download_stream(
    session: Any, file_hash: str, size: int, options: Any
) -> DownloadReader:
    from .jsbridge import option

    _require_downloads(session)
    pieces = session.download_pieces(file_hash, size, **_download_kwargs(options))
    return DownloadReader(aiter(pieces), int(option(options, "blockSize", BLOB_PART)))


__all__ = [
    "BLOB_BLOCK",
    "MAX_BLOB_DOWNLOAD",
    "READ_AHEAD",
    "DownloadReader",
    "blob_from_memory",
    "blob_name",
    "blob_size",
    "check_blob_size",
    "describe_js_value",
    "download_to_blob",
    "open_download_stream",
    "parse_range",
    "read_blob",
    "read_slice",
    "require_blob",
]
