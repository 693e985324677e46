"""Download checks that run unchanged in CPython, Pyodide-in-Node and Pyodide-in-Chromium.

The CPython side (``tests/cpython/test_download_portable.py``) uploads files with hf_xet to the
local CAS server and passes hashes, sizes and ranges here; we download with
:class:`xet_pyodide.XetSession` and return SHA-256 digests, lengths and statistics (only small
JSON crosses the runtime boundary). The CPython side compares them with the originals.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any


def _digest(data: bytes | bytearray) -> str:
    return hashlib.sha256(data).hexdigest()


async def _session(endpoint: str, token: str, exp: int, options: dict[str, Any]) -> Any:
    from xet_pyodide import SessionConfig, XetSession
    from xet_pyodide.io import RetryPolicy
    from xet_pyodide.kernels import load_kernels

    await load_kernels()
    retry = RetryPolicy(**options["retry"]) if options.get("retry") else None
    return XetSession(
        endpoint,
        (token, exp),
        config=SessionConfig(**options.get("config", {})),
        retry=retry,
        chunk_cache=options.get("chunk_cache"),
    )


async def download_files(
    endpoint: str, token: str, exp: int, items: list[dict], options: dict | None = None
) -> dict[str, Any]:
    """For each item ``{"hash", "size", "ranges": [[start, end], ...], "stream_block"?}``:
    download the whole file (bytes API; and as a stream when ``stream_block`` is given) and
    every range. Returns digests and lengths per item, the stats of each full download, the
    progress phases of the first non-empty one, the runtime and the cache kind."""
    options = options or {}
    session = await _session(endpoint, token, exp, options)
    out: list[dict[str, Any]] = []
    phases: list[str] = []

    def on_progress(event: dict) -> None:
        if not phases or phases[-1] != event["phase"]:
            phases.append(event["phase"])

    try:
        for item in items:
            watch = on_progress if item["size"] and not phases else None
            data = await session.download_bytes(item["hash"], item["size"], progress=watch)
            result: dict[str, Any] = {
                "sha256": _digest(data),
                "length": len(data),
                "stats": session.last_download.to_dict(),
            }
            del data
            if item.get("stream_block"):
                h, sizes = hashlib.sha256(), []
                async for block in session.download_stream(
                    item["hash"], item["size"], block_size=item["stream_block"]
                ):
                    h.update(block)
                    sizes.append(len(block))
                result["stream"] = {"sha256": h.hexdigest(), "blocks": sizes}
            ranges = []
            for start, end in item.get("ranges", []):
                part = await session.download_bytes(
                    item["hash"], item["size"], byte_range=(start, end)
                )
                ranges.append([_digest(part), len(part)])
            result["ranges"] = ranges
            out.append(result)
        cache = await session.chunk_cache()
    finally:
        await session.aclose()
    return {
        "files": out,
        "phases": phases,
        "platform": sys.platform,
        "cache": type(cache.store).__name__ if cache is not None else None,
    }


async def download_error(
    endpoint: str, token: str, exp: int, item: dict, options: dict | None = None
) -> dict[str, Any]:
    """Download one item expecting a failure; return the error type (or the digest)."""
    session = await _session(endpoint, token, exp, options or {})
    try:
        data = await session.download_bytes(
            item["hash"], item["size"], byte_range=item.get("range")
        )
        return {"error": None, "sha256": _digest(data)}
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc)[:300]}
    finally:
        await session.aclose()


async def cached_download(
    endpoint: str, token: str, exp: int, item: dict, options: dict | None = None
) -> dict[str, Any]:
    """Download twice through one session; the stats of both downloads (the second one should
    come from the chunk cache)."""
    session = await _session(endpoint, token, exp, options or {})
    runs = []
    try:
        cache = await session.chunk_cache()
        if cache is not None:
            await cache.clear()  # the browser's Cache API outlives sessions and tests
        for _ in range(2):
            data = await session.download_bytes(item["hash"], item["size"])
            runs.append({"sha256": _digest(data), **session.last_download.to_dict()})
    finally:
        await session.aclose()
    return {"runs": runs, "cache": type(cache.store).__name__ if cache is not None else None}
