"""The in-browser half of bench/download.py: download one file with our Python API, timed.

Runs inside Pyodide on bench/download_page.html (bare headless Chromium, no Playwright/CDP).
``run(**config)`` downloads ``config["file"]`` once per entry of ``config["modes"]``:

* ``"drain"`` — ``download_stream`` blocks dropped as they come (download + decode + verify);
* ``"blob"``  — blocks copied into JS ``Uint8Array`` parts and assembled into a ``Blob``
  (what a page does to offer the file to the user);
* ``"fetch"`` / ``"jsfetch"`` / ``"sfetch"`` — transport ceilings (whole bodies into Python,
  whole bodies kept in JS, bodies streamed into Python block by block);
* ``"jsblob"`` — the browser package's ``downloadToBlob`` path (``xet_pyodide.io.blob``), when
  present.

The chunk cache is off unless ``config["cache"]`` names a kind (e.g. ``"browser"``), so every
run fetches all xorb bytes.
"""

from __future__ import annotations

import time
from typing import Any


async def _blob(session: Any, file: dict[str, Any], block_size: int) -> int:
    import js  # type: ignore[import-not-found]

    parts = js.Array.new()
    async for block in session.download_stream(file["hash"], file["size"], block_size=block_size):
        part = js.Uint8Array.new(len(block))
        part.assign(block)
        parts.push(part)
        del block
    blob = js.Blob.new(parts)
    parts = None
    return int(blob.size)


async def _drain(session: Any, file: dict[str, Any], block_size: int) -> int:
    n = 0
    async for block in session.download_stream(file["hash"], file["size"], block_size=block_size):
        n += len(block)
    return n


async def _jsblob(session: Any, file: dict[str, Any], block_size: int) -> int:
    from xet_pyodide.io import blob as blob_module  # the browser package's helper

    result = await blob_module.download_to_blob(session, file["hash"], file["size"], None)
    return int(result.size)


async def _fetch(session: Any, file: dict[str, Any], block_size: int) -> int:
    """Transport ceiling: the reconstruction and every xorb range fetched (8 at a time), no
    decoding, verification or output."""
    import asyncio

    from xet_pyodide.core.hashes import MerkleHash

    rec = await session.cas.get_reconstruction(
        MerkleHash.from_hex(file["hash"]), (0, file["size"] - 1)
    )
    gate = asyncio.Semaphore(8)

    async def one(f: Any) -> int:
        async with gate:
            return len(await session.cas.fetch_xorb_range(f.url, f.byte_start, f.byte_end))

    await asyncio.gather(*(one(f) for f in rec.all_fetches()))
    return int(file["size"])


async def _jsfetch(session: Any, file: dict[str, Any], block_size: int) -> int:
    """Browser + server ceiling: the same GETs as ``fetch`` issued from JS, bodies read as
    ``ArrayBuffer`` and never copied into Python."""
    import asyncio

    import js  # type: ignore[import-not-found]
    from pyodide.ffi import to_js  # type: ignore[import-not-found]

    from xet_pyodide.core.hashes import MerkleHash

    rec = await session.cas.get_reconstruction(
        MerkleHash.from_hex(file["hash"]), (0, file["size"] - 1)
    )
    gate = asyncio.Semaphore(8)

    async def one(f: Any) -> int:
        options = to_js(
            {"headers": {"Range": f"bytes={f.byte_start}-{f.byte_end}"}},
            dict_converter=js.Object.fromEntries,
        )
        async with gate:
            resp = await js.fetch(f.url, options)
            return int((await resp.arrayBuffer()).byteLength)

    await asyncio.gather(*(one(f) for f in rec.all_fetches()))
    return int(file["size"])


async def _sfetch(session: Any, file: dict[str, Any], block_size: int) -> int:
    """Streamed transport ceiling: every xorb range read block by block through
    ``CasClient.open_xorb_range`` (what a download does in a browser), nothing decoded."""
    import asyncio
    import contextlib

    from xet_pyodide.core.hashes import MerkleHash

    rec = await session.cas.get_reconstruction(
        MerkleHash.from_hex(file["hash"]), (0, file["size"] - 1)
    )
    gate = asyncio.Semaphore(8)
    blocks = 0

    async def one(f: Any) -> None:
        nonlocal blocks
        async with gate:
            body = session.cas.open_xorb_range(f.url, f.byte_start, f.byte_end)
            async with contextlib.aclosing(body):
                async for _ in body:
                    blocks += 1

    await asyncio.gather(*(one(f) for f in rec.all_fetches()))
    EXTRA["blocks"] = blocks
    return int(file["size"])


async def _js_read(session: Any, file: dict[str, Any], in_worker: bool) -> int:
    import asyncio

    import js  # type: ignore[import-not-found]

    from xet_pyodide.core.hashes import MerkleHash

    rec = await session.cas.get_reconstruction(
        MerkleHash.from_hex(file["hash"]), (0, file["size"] - 1)
    )
    read = js.benchReadBodyInWorker if in_worker else js.benchReadBody
    gate = asyncio.Semaphore(8)

    async def one(f: Any) -> int:
        async with gate:
            return int(await read(f.url, f"bytes={f.byte_start}-{f.byte_end}"))

    await asyncio.gather(*(one(f) for f in rec.all_fetches()))
    return int(file["size"])


async def _jsread(session: Any, file: dict[str, Any], block_size: int) -> int:
    """Like ``sfetch``, the bodies read block by block in JS on the page's thread (the page's
    ``benchReadBody``): what the browser's streaming costs without Python."""
    return await _js_read(session, file, False)


async def _wfetch(session: Any, file: dict[str, Any], block_size: int) -> int:
    """Like ``jsread``, in a Web Worker (``bench/download_read_worker.mjs``)."""
    return await _js_read(session, file, True)


#: Mode-specific figures added to the mode's result (e.g. ``sfetch``: body blocks read).
EXTRA: dict[str, Any] = {}

MODES = {
    "sfetch": _sfetch,
    "jsread": _jsread,
    "wfetch": _wfetch,
    "blob": _blob,
    "drain": _drain,
    "jsblob": _jsblob,
    "fetch": _fetch,
    "jsfetch": _jsfetch,
}


async def run(
    endpoint: str,
    token: str,
    exp: int,
    file: dict[str, Any],
    modes: list[str],
    block_size: int = 8 << 20,
    cache: str | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from xet_pyodide import SessionConfig, XetSession
    from xet_pyodide.kernels import load_kernels

    await load_kernels()
    results = []
    for mode in modes:
        session = XetSession(
            endpoint,
            (token, exp),
            config=SessionConfig(**(config or {})),
            chunk_cache=cache if cache else False,
        )
        try:
            started = time.perf_counter()
            size = await MODES[mode](session, file, block_size)
            seconds = time.perf_counter() - started
        finally:
            await session.aclose()
        stats = session.last_download
        assert size == file["size"], (mode, size)
        extra = dict(EXTRA)
        EXTRA.clear()
        results.append(
            {
                **extra,
                "mode": mode,
                "seconds": seconds,
                "mb_per_s": size / seconds / 1e6,
                "verified": stats.verified if stats else None,
                "bytes_fetched": stats.bytes_fetched if stats else None,
                "requests": stats.fetch_requests if stats else None,
                "decode_seconds": round(stats.decode_seconds, 3) if stats else None,
                "hash_seconds": round(stats.hash_seconds, 3) if stats else None,
                "wait_seconds": round(stats.wait_seconds, 3) if stats else None,
                "peak_buffered_mib": round(stats.peak_buffered_bytes / (1 << 20), 1)
                if stats
                else None,
            }
        )
    return {"runs": results}
