"""End-to-end uploads from CPython to the local CAS server over HTTP, checked with hf_xet:
global dedup (against our own and hf_xet's uploads), fault injection, token expiry, broken
servers, memory bound, 200 MB files."""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.portable.upload_checks import make_data
from xet_pyodide.errors import XetAuthError, XetServerError
from xet_pyodide.io import RetryPolicy, TokenUrlRefresher
from xet_pyodide.session import SessionConfig, XetSession

if TYPE_CHECKING:
    from tests.plugins.cas_server import CasServer


MB = 1_000_000
FAST_RETRY = RetryPolicy(max_attempts=10, base_delay=0.05, max_delay=1.0, max_total=120)


def new_session(server: CasServer, **kw: Any) -> XetSession:
    kw.setdefault("retry", FAST_RETRY)
    return XetSession(server.url, server.token("write"), **kw)


async def upload(server: CasServer, datas: list[bytes], **kw: Any) -> Any:
    session = new_session(server, **kw)
    try:
        for i, data in enumerate(datas):
            await session.upload_bytes(data, name=f"f{i}")
        return await session.finalize()
    finally:
        await session.aclose()


def hf_download(server: CasServer, files: list[Any], tmp: Path) -> list[bytes]:
    items = [
        {"hash": f.hash, "size": f.size, "dest": tmp / f"dl-{i}"}
        for i, f in enumerate(files)
        if f.size
    ]
    server.hf_download(items, hf_home=tmp / f"hf-dl-{time.monotonic_ns()}")
    return [Path(i["dest"]).read_bytes() for i in items]


async def test_reupload_in_new_session_sends_no_xorb_bytes(cas_server_factory) -> None:
    server = cas_server_factory()
    datas = [make_data("random", 6 * MB, 1), make_data("floats", 2 * MB, 2), b"tiny file"]
    first = await upload(server, datas)
    assert first.metrics.xorb_bytes_uploaded > 0
    server.reset_stats()
    second = await upload(server, datas)
    stats = server.stats()
    assert stats["xorb_bytes_received"] == 0
    assert second.metrics.xorb_bytes_uploaded == 0 and second.metrics.new_bytes == 0
    assert second.metrics.deduped_bytes_global == sum(map(len, datas))
    assert stats["dedup_hits"] >= 1
    assert [f.hash for f in second.files] == [f.hash for f in first.files]


async def test_one_percent_edit_in_50mb_file(cas_server_factory, tmp_path: Path) -> None:
    server = cas_server_factory()
    data = make_data("random", 50 * MB, 3)
    await upload(server, [data])
    edit = random.Random(4).randbytes(500_000)
    middle = len(data) // 2
    edited = data[:middle] + edit + data[middle + len(edit) :]
    server.reset_stats()
    result = await upload(server, [edited])
    received = server.stats()["xorb_bytes_received"]
    assert 0 < received < 0.05 * len(edited), received
    assert result.metrics.deduped_bytes_global > 0.95 * len(edited)
    assert hf_download(server, result.files, tmp_path) == [edited]


async def test_dedup_against_hf_xet_uploads(cas_server_factory, tmp_path: Path) -> None:
    import hf_xet

    server = cas_server_factory()
    datas = [make_data("random", 5 * MB, 5), make_data("text", 3 * MB, 6)]
    paths = []
    for i, data in enumerate(datas):
        paths.append(tmp_path / f"hf-{i}")
        paths[-1].write_bytes(data)
    theirs = server.hf_upload(paths, hf_home=tmp_path / "hf-up")
    server.reset_stats()
    ours_data = [*datas, datas[0] + make_data("random", MB, 7)]
    result = await upload(server, ours_data)
    assert [f["hash"] for f in theirs["files"]] == [f.hash for f in result.files[:2]]
    paths.append(tmp_path / "extended")
    paths[-1].write_bytes(ours_data[2])
    assert [f.hash for f in result.files] == [
        i.hash for i in hf_xet.hash_files([str(p) for p in paths])
    ]
    m = result.metrics
    assert m.deduped_bytes_global >= len(datas[0]) + len(datas[1])
    assert server.stats()["xorb_bytes_received"] == m.xorb_bytes_uploaded < 1.3 * MB
    assert hf_download(server, result.files, tmp_path) == ours_data


async def test_survives_15_percent_faults(cas_server_factory, tmp_path: Path) -> None:
    """5xx, 429 (with Retry-After), aborted requests and dropped acknowledgements on every
    upload endpoint, ~15% of requests in total."""
    mixed = {"error_rate": 0.06, "status": 503, "abort_rate": 0.045, "drop_rate": 0.045}
    faults = {
        "seed": 7,
        "endpoints": {
            **{name: mixed for name in ("xorb_grant", "grant_put", "xorb_upload", "shard_v2")},
            "xorb_commit": {**mixed, "status": 429, "retry_after": 0},
            "chunks": {**mixed, "status": 429, "retry_after": 0},
        },
    }
    server = cas_server_factory(faults=faults)
    # 1 MiB xorbs and three commits: ~150 requests, so ~20 faults hit every upload step.
    config = SessionConfig(max_concurrent_xorb_uploads=4, max_xorb_bytes=1 << 20)
    kinds = [("random", 7 * MB), ("floats", 4 * MB), ("repetitive", 5 * MB), ("text", 100_000)]
    files, datas = [], []
    for commit in range(3):
        batch = [make_data(k, s, 10 * commit + i) for i, (k, s) in enumerate(kinds)]
        result = await upload(server, batch, config=config)
        files += result.files
        datas += batch
    log = server.request_log()
    injected = {(e["endpoint"], e["fault"]) for e in log if e.get("fault")}
    assert len([e for e in log if e.get("fault")]) >= 10
    assert {"grant_put", "xorb_grant", "xorb_commit"} <= {endpoint for endpoint, _ in injected}
    assert {"error", "abort", "drop"} <= {kind for _, kind in injected}
    server.set_faults()
    assert hf_download(server, files, tmp_path) == datas


async def test_token_expiring_mid_upload_is_refreshed(cas_server_factory, tmp_path: Path) -> None:
    """Tokens live 33 s (3 s beyond the refresh margin) and every request is slowed down, so
    the upload outlives several tokens; the refresher (the token endpoint) keeps it going.
    (150 ms per request sufficed while every response also waited ~40 ms for a delayed ACK;
    without that Nagle stall the upload took under 6 s, too short for a second refresh.)"""
    server = cas_server_factory(faults={"endpoints": {"*": {"latency_ms": 300}}})
    refresher = TokenUrlRefresher(server.token_url("write", ttl=33), server.token_headers)
    session = XetSession(
        server.url,
        server.token("write", ttl=33),
        refresher,
        retry=FAST_RETRY,
        config=SessionConfig(max_concurrent_xorb_uploads=1, max_concurrent_dedup_queries=1),
    )
    datas = [make_data("random", 200_000, 20 + i) for i in range(30)]
    started = time.monotonic()
    try:
        for data in datas:  # one slowed-down dedup query per file: ~9 s in all
            await session.upload_bytes(data)
        result = await session.finalize()
    finally:
        await session.aclose()
        await refresher.aclose()
    elapsed = time.monotonic() - started
    assert session.tokens.refresh_count >= 2, elapsed
    assert server.stats()["statuses"].get("xorb_commit", {}).get("401") is None
    assert hf_download(server, result.files, tmp_path) == datas


async def test_rejected_token_is_refreshed_once(cas_server_factory) -> None:
    server = cas_server_factory()
    calls = 0

    def refresher():
        nonlocal calls
        calls += 1
        return server.token("write")

    # A well-formed but revoked/garbage token with a far expiry: the server answers 401.
    session = XetSession(server.url, ("xcas1.e30.bad", 2**40), refresher, retry=FAST_RETRY)
    try:
        await session.upload_bytes(make_data("random", MB, 30))
        result = await session.finalize()
    finally:
        await session.aclose()
    assert calls == 1 and result.metrics.shards_uploaded == 1
    # Without a refresher the 401 is final and typed.
    session = XetSession(server.url, ("xcas1.e30.bad", 2**40), retry=FAST_RETRY)
    try:
        await session.upload_bytes(make_data("random", MB, 31))
        with pytest.raises(XetAuthError) as info:
            await session.finalize()
        assert info.value.status == 401 and info.value.request_id
    finally:
        await session.aclose()


async def test_failing_xorb_uploads_never_lead_to_a_shard(cas_server_factory) -> None:
    faults = {
        "endpoints": {
            "grant_put": {"error_rate": 1.0, "status": 500},
            "xorb_upload": {"error_rate": 1.0, "status": 500},
        }
    }
    server = cas_server_factory(faults=faults)
    retry = RetryPolicy(max_attempts=2, base_delay=0.01)
    with pytest.raises(XetServerError) as info:
        await upload(server, [make_data("random", 3 * MB, 40), b"small"], retry=retry)
    assert info.value.status == 500 and info.value.request_id
    stats = server.stats()
    assert "shard_v2" not in stats["requests"] and "shard_v1" not in stats["requests"]
    assert stats["shards_inserted"] == 0


def garbage_app(mode: str, log: list[str]) -> Any:
    """A server that speaks HTTP but not Xet. ``mode``: "grant" (garbage grant JSON) or
    "shard" (legacy xorbs accepted, garbage NDJSON from /v2/shards)."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        log.append(f"{request.method} {request.path}")
        path = request.path
        headers = {"X-Request-Id": f"garbage-{len(log)}"}
        if path.startswith("/v1/chunks/"):
            return web.Response(status=200, body=b"\x00 not a shard", headers=headers)
        if path.startswith("/v1/xorb-grants/"):
            if mode == "grant":
                return web.Response(status=201, body=b"<html>oops</html>", headers=headers)
            return web.Response(status=404, headers=headers)
        if path.startswith("/v1/xorbs/"):
            return web.Response(status=200, body=b"{}", headers=headers)
        if path == "/v2/shards":
            return web.Response(status=200, body=b"%PDF-1.4 garbage\n", headers=headers)
        return web.Response(status=404, headers=headers)

    app = web.Application(client_max_size=128 << 20)
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


async def test_garbage_server_gives_typed_errors() -> None:
    from tests.cpython.test_session_fakecas import serve_app
    from xet_pyodide.errors import XetResponseError

    for mode in ("grant", "shard"):
        log: list[str] = []
        with serve_app(garbage_app(mode, log)) as url:
            session = XetSession(url, ("t", 2**40), retry=FAST_RETRY)
            try:
                await session.upload_bytes(make_data("random", 2 * MB, 50))
                with pytest.raises(XetResponseError) as info:
                    await session.finalize()
            finally:
                await session.aclose()
        assert info.value.request_id and info.value.request_id.startswith("garbage-")
        shard_posts = [line for line in log if "shards" in line]
        if mode == "grant":  # the xorb never got stored: no shard may be sent
            assert shard_posts == [] and not any("/v1/xorbs/" in line for line in log)
        else:  # xorbs were acknowledged; the garbage shard answer is the error
            assert shard_posts == ["POST /v2/shards"]


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@pytest.mark.slow
async def test_200mb_streamed_upload_memory_bound_and_hf_xet_download(
    cas_server_factory, tmp_path: Path
) -> None:
    """A 200 MB streamed upload (random + float-like + repetitive regions) with a 128 MiB
    buffer bound: the pipeline's own accounting, Python's allocations (tracemalloc) and the
    process RSS stay near the bound; hf_xet downloads the file byte-identical."""
    import gc
    import tracemalloc

    import hf_xet

    server = cas_server_factory()
    bound = 128 << 20
    config = SessionConfig(max_buffered_bytes=bound)
    blocks = [("random", 8_000_000, i) for i in range(19)]
    blocks += [("floats", 8_000_000, 100 + i) for i in range(3)]
    blocks += [("repetitive", 8_000_000, 200 + i) for i in range(3)]
    digest = hashlib.sha256()
    rss_peak = 0

    def on_progress(event: dict) -> None:
        nonlocal rss_peak
        rss_peak = max(rss_peak, _rss())

    session = new_session(server, config=config, progress=on_progress)
    gc.collect()
    baseline = _rss()
    tracemalloc.start()
    try:
        upload = session.start_upload("big", size=200_000_000)
        for kind, size, seed in blocks:
            block = make_data(kind, size, seed)
            digest.update(block)
            await upload.write(block)
            del block
        result = await upload.finish()
        commit = await session.finalize()
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await session.aclose()
    m = commit.metrics
    print(
        f"200 MB streamed: budget peak {m.peak_buffered_bytes / 2**20:.1f} MiB, tracemalloc peak"
        f" {traced_peak / 2**20:.1f} MiB, RSS growth {(rss_peak - baseline) / 2**20:.1f} MiB"
        f" (bound {bound / 2**20:.0f} MiB)"
    )
    assert m.total_bytes == 200_000_000 and m.xorbs_uploaded >= 3
    assert m.peak_buffered_bytes <= bound + config.block_size
    assert traced_peak <= bound + (48 << 20), traced_peak / 2**20
    assert rss_peak - baseline <= bound + (128 << 20), (rss_peak - baseline) / 2**20
    dest = tmp_path / "big.out"
    server.hf_download(
        [{"hash": result.hash, "size": result.size, "dest": dest}], hf_home=tmp_path / "hf"
    )
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == digest.hexdigest() == result.sha256
    assert hf_xet.hash_files([str(dest)])[0].hash == result.hash


@pytest.mark.slow
async def test_file_over_4_gib_round_trip(cas_server_factory) -> None:
    """A 4.77 GiB streamed upload (mostly deduplicated, so it stays quick: 8 MiB blocks cycling
    three random blocks, each stamped with its index) and reads back across the 2**32 byte
    boundary and at the very end, then a full verified download: no 32-bit offset anywhere
    (file offsets, term and range arithmetic, reconstruction offsets, SHA-256 length)."""
    server = cas_server_factory()
    block_size = 8 << 20
    count = 610  # 5_117_050_880 bytes
    size = block_size * count
    bases = [random.Random(i).randbytes(block_size) for i in range(3)]

    def block(i: int) -> bytes:
        b = bytearray(bases[i % 3])
        b[:16] = i.to_bytes(16, "little")
        return bytes(b)

    def expected(start: int, end: int) -> bytes:  # inclusive end
        first, last = start // block_size, end // block_size
        data = b"".join(block(i) for i in range(first, last + 1))
        return data[start - first * block_size : end - first * block_size + 1]

    digest = hashlib.sha256()
    session = new_session(server)
    try:
        upload = session.start_upload("over-4-gib.bin", size=size)
        for i in range(count):
            data = block(i)
            digest.update(data)
            await upload.write(data)
        info = await upload.finish()
        commit = await session.finalize()
        assert info.size == size and info.sha256 == digest.hexdigest()
        assert commit.metrics.total_bytes == size
        assert commit.metrics.deduped_bytes > 4 * 2**30  # the cycle deduplicates
        for start, end in [
            (2**32 - 1000, 2**32 + 5000),  # across the 32-bit boundary
            (size - 12345, size - 1),  # the last bytes
            (block_size * 511 + 7, block_size * 513 + 100),  # two block joins past 2**32
        ]:
            got = b"".join(
                [
                    bytes(piece)
                    async for piece in session.download_stream(
                        info.hash, info.size, byte_range=(start, end)
                    )
                ]
            )
            assert got == expected(start, end), (start, end)
        check = hashlib.sha256()
        total = 0
        async for piece in session.download_stream(info.hash, info.size):
            check.update(piece)
            total += len(piece)
        assert total == size and check.hexdigest() == info.sha256
    finally:
        await session.aclose()
