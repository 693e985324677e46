"""Upload checks that run unchanged in CPython, Pyodide-in-Node and Pyodide-in-Chromium.

The CPython side (``tests/cpython/test_upload_portable.py``) starts the local CAS server, passes
its URL and a token here, and verifies what we uploaded with hf_xet (hash_files + download).
Test data is generated from specs with :func:`make_data` on both sides (stdlib only, seeded),
so only small JSON crosses the runtime boundary.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
import sys
import time
from typing import Any


def make_data(kind: str, size: int, seed: int) -> bytes:
    """Deterministic file contents. ``kind``: random | repetitive | floats | zeros | text."""
    rng = random.Random(seed)
    if kind == "random":
        return rng.randbytes(size)
    if kind == "zeros":
        return bytes(size)
    if kind == "repetitive":  # a 100 kB random block, repeated (session dedup within a file)
        block = rng.randbytes(100_000)
        return (block * (size // len(block) + 1))[:size]
    if kind == "floats":  # float32 weights: BG4-LZ4 territory (built in small pieces)
        n = size // 4 + 1
        piece = 16384
        parts = []
        for start in range(0, n, piece):
            count = min(piece, n - start)
            parts.append(struct.pack(f"<{count}f", *[rng.gauss(0.0, 0.02) for _ in range(count)]))
        return b"".join(parts)[:size]
    if kind == "text":
        words = [b"xet ", b"chunk ", b"pyodide ", b"shard ", b"\n", b"0123456789 "]
        parts, total = [], 0
        while total < size:
            word = rng.choice(words)
            parts.append(word)
            total += len(word)
        return b"".join(parts)[:size]
    raise ValueError(f"unknown data kind {kind!r}")


async def upload_files(
    endpoint: str, token: str, exp: int, specs: list[dict], options: dict | None = None
) -> dict[str, Any]:
    """Upload ``specs`` (``{"name", "kind", "size", "seed", "stream"?: block size}``) in one
    session and commit. Options: ``refresh_url`` + ``refresh_headers`` (token endpoint used
    as refresher), ``config`` (SessionConfig fields), ``retry`` (RetryPolicy fields)."""
    from xet_pyodide.io import RetryPolicy, TokenUrlRefresher
    from xet_pyodide.kernels import get_kernels, load_kernels
    from xet_pyodide.session import SessionConfig, XetSession

    await load_kernels()
    options = options or {}
    refresher = None
    if options.get("refresh_url"):
        refresher = TokenUrlRefresher(options["refresh_url"], options.get("refresh_headers"))
    phases: list[str] = []

    def on_progress(event: dict) -> None:
        if not phases or phases[-1] != event["phase"]:
            phases.append(event["phase"])

    session = XetSession(
        endpoint,
        (token, exp),
        refresher,
        config=SessionConfig(**options.get("config", {})),
        retry=RetryPolicy(**options["retry"]) if options.get("retry") else None,
        progress=on_progress,
    )
    sha256s = []
    processing = 0.0
    try:
        for spec in specs:
            data = make_data(spec["kind"], spec["size"], spec["seed"])
            sha256s.append(hashlib.sha256(data).hexdigest())
            started = time.perf_counter()
            block = spec.get("stream")
            if block:
                up = session.start_upload(spec["name"], size=len(data))
                for start in range(0, len(data), block):
                    await up.write(data[start : start + block])
                await up.finish()
            else:
                await session.upload_bytes(data, name=spec["name"])
            processing += time.perf_counter() - started
            del data
        started = time.perf_counter()
        result = await session.finalize()
        committing = time.perf_counter() - started
    finally:
        await session.aclose()
    out = result.to_dict()
    out.update(
        sha256s=sha256s,
        platform=sys.platform,
        kernels=get_kernels().name,
        refreshes=session.tokens.refresh_count,
        phases=phases,
        seconds={"processing": processing, "commit": committing},
    )
    return out


async def transport_roundtrip(url: str) -> dict[str, Any]:
    """Exercise the default transport against ``url`` (any server): GET, streamed GET,
    and a refused connection."""
    from xet_pyodide.io import TransportError, default_transport

    transport = default_transport()
    resp = await transport.request("GET", url)
    streamed = await transport.stream("GET", url)
    try:
        body = await streamed.read()
    finally:
        await streamed.aclose()
    try:
        await transport.request("GET", "http://127.0.0.1:9/nothing-listens-here")
        refused = "no error"
    except TransportError as exc:
        refused = type(exc).__name__
    return {
        "transport": type(transport).__name__,
        "browser": transport.browser,
        "status": resp.status,
        # error bodies carry per-request ids: compare their shape
        "same_body": sorted(json.loads(body)) == sorted(json.loads(resp.body)),
        "length": len(body),
        "refused": refused,
    }


async def js_token_shapes() -> dict[str, Any]:
    """Pyodide only: token infos and refreshers as JS objects reach us through JsProxy."""
    from pyodide.code import run_js  # type: ignore[import-not-found]

    from xet_pyodide.io.tokens import call_refresher, coerce_token_info

    method_form = run_js("({token: () => 'm-token', exp: () => 1900000000n})")
    getter_form = run_js("({get accessToken() { return 'g-token'; }, exp: 1900000001})")
    refresher = run_js(
        "({n: 0, refreshToken() { this.n += 1;"
        " return Promise.resolve({token: () => 'r' + this.n, exp: () => 2000000000n}); }})"
    )
    plain_fn = run_js("async () => ({accessToken: 'fn-token', exp: 2000000001})")
    a = coerce_token_info(method_form)
    b = coerce_token_info(getter_form)
    c = await call_refresher(refresher)
    d = await call_refresher(plain_fn)
    return {
        "method": [a.token, a.exp, type(a.exp).__name__],
        "getter": [b.token, b.exp],
        "refresher": [c.token, c.exp],
        "function": [d.token, d.exp],
    }


async def js_progress_callback() -> dict[str, Any]:
    """Pyodide only: a JS progress callback receives plain JS objects."""
    from pyodide.code import run_js  # type: ignore[import-not-found]

    from xet_pyodide.io.jsinterop import invoke_callback

    record = run_js(
        "(() => { const seen = []; const f = (e) => { seen.push(e.phase + ':' + e.files.length"
        " + ':' + (e.files[0].name)); }; f.seen = seen; return f; })()"
    )
    await invoke_callback(record, {"phase": "processing", "files": [{"name": "a"}]})
    return {"seen": list(record.seen.to_py())}


class _ChainPool:
    """Stands in for the worker pool under :class:`~xet_pyodide.io.pool_sha.Sha256Chain`: a
    bytearray for the shared buffer, the kernels for the workers (each link answers a turn
    later, as a worker would); link number ``fail_at`` fails as a worker's error does."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.memory = bytearray()
        self.links: list[tuple[int, int]] = []  # (head length, length) of each link posted
        self.fail_at = fail_at

    def put(self, data: bytes) -> int:
        offset = len(self.memory)
        self.memory += data
        return offset

    async def sha256_blocks(self, offset: int, length: int, state: bytes, head: bytes) -> bytes:
        import asyncio

        from xet_pyodide.errors import XetKernelError
        from xet_pyodide.kernels import get_kernels

        self.links.append((len(head), length))
        await asyncio.sleep(0)
        if len(self.links) == self.fail_at:
            raise XetKernelError("hashing worker failed: link failed (test)")
        data = head + bytes(self.memory[offset : offset + length])
        return get_kernels().sha256_blocks(state, data)

    def read(self, offset: int, n: int) -> bytes:
        return bytes(self.memory[offset : offset + n])


async def sha256_chains(cases: list[list[Any]]) -> list[dict[str, Any]]:
    """cases: [seed, size, block, slot_min, fail_at, cancel_after]. The file of ``size`` random
    bytes goes to a :class:`~xet_pyodide.io.pool_sha.Sha256Chain` the way ``read_blob`` feeds
    it: ``block``-byte pieces, in a "slot" (a link on the stand-in pool, ready a turn later)
    from ``slot_min`` bytes on, else as bytes on this thread. ``cancel_after``: the digest is
    cancelled (an abandoned upload) after that many pieces. Returns per case the digest (hex)
    or the error, the links posted, and whether every slot was freed and the chain ended."""
    import asyncio

    from xet_pyodide.io.pool_sha import Sha256Chain

    out = []
    for seed, size, block, slot_min, fail_at, cancel_after in cases:
        data = make_data("random", size, seed)
        pool = _ChainPool(fail_at)
        chain = Sha256Chain(pool)
        frees = []
        for n, start in enumerate(range(0, size, block)):
            if cancel_after is not None and n == cancel_after:
                chain.digest.cancel()
            piece = data[start : start + block]
            if len(piece) >= slot_min:
                ready = asyncio.ensure_future(asyncio.sleep(0))
                frees.append(chain.add_slot(pool.put(piece), len(piece), ready))
            else:
                chain.add_bytes(piece)
            await asyncio.sleep(0)
        chain.close()
        result: dict[str, Any] = {}
        try:
            result["digest"] = (await chain.digest).hex()
        except asyncio.CancelledError:
            result["digest"] = "cancelled"
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
        for _ in range(20):  # the chain's own task ends a few turns later
            await asyncio.sleep(0)
        result["links"] = pool.links
        result["freed"] = all(f.done() for f in frees)
        result["ended"] = chain._task.done()
        out.append(result)
    return out
