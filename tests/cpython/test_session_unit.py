"""Upload-session logic against the in-memory FakeCas: chunk/hash stage, packing, session
and global dedup, sha256 modes, progress, failures. (End-to-end tests: test_upload_e2e.py.)"""

from __future__ import annotations

import asyncio
import hashlib
import random
import struct

import pytest

from tests.cpython.test_session_fakecas import FakeCas
from xet_pyodide.core.chunking import chunk_data, scan_block
from xet_pyodide.core.filehash import hash_bytes
from xet_pyodide.core.hashes import chunk_hash, hash_chunks
from xet_pyodide.core.shard import parse_shard
from xet_pyodide.core.xorb import XorbBuilder
from xet_pyodide.errors import XetServerError
from xet_pyodide.io.retry import RetryPolicy
from xet_pyodide.io.testing import MockRequest
from xet_pyodide.session import SKIP, InProcessChunkHasher, SessionConfig, XetSession

MB = 1_000_000


def rand(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def floats(n: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    values = [rng.gauss(0, 1) for _ in range(n // 4)]
    return struct.pack(f"<{len(values)}f", *values)


async def _no_sleep(_: float) -> None:
    return None


def session(cas: FakeCas, **kw) -> XetSession:
    kw.setdefault("retry", RetryPolicy(max_attempts=2, sleep=_no_sleep))
    return XetSession("http://cas", ("tok", 2**40), transport=cas.transport, **kw)


@pytest.mark.parametrize(
    ("size", "splits"),
    [
        (150_000, [1, 4000, 3]),
        (400_000, [100, 7919]),
        (3 * MB, [65536]),
        (3 * MB, [1 << 20, 3]),
        (3 * MB, [9_000_000]),
    ],
)
async def test_chunk_hasher_matches_core_for_any_split(size: int, splits: list[int]) -> None:
    data = rand(size, 1) + bytes(300_000) + rand(200_000, 2)
    hasher = InProcessChunkHasher()
    chunks, hashes = [], b""
    pos, i = 0, 0
    while pos < len(data):
        step = splits[i % len(splits)]
        batch = await hasher.update(data[pos : pos + step])
        chunks += [bytes(c) for c in batch.chunks]
        hashes += batch.hashes
        pos += step
        i += 1
    batch = await hasher.finish()
    chunks += [bytes(c) for c in batch.chunks]
    hashes += batch.hashes
    expected = chunk_data(data)
    assert chunks == expected
    assert hashes == b"".join(h.raw for h in hash_chunks(expected))


class PoolStyleHasher(InProcessChunkHasher):
    """What a worker pool does: position-independent scans (``tail + block`` from state 0,
    split in slices) and per-chunk hashing — results must not change."""

    async def find_candidates(self, block: memoryview) -> list[int]:
        out, tail, step = [], self.tail, 300_007
        for start in range(0, len(block), step):
            piece = block[start : start + step]
            out += [start + c for c in scan_block(piece, tail)]
            tail = (bytes(tail) + bytes(piece))[-63:]
        return out

    async def hash_spans(self, data: memoryview, lengths: list[int]) -> bytes:
        digests, pos = [], 0
        for n in lengths:
            digests.append(chunk_hash(data[pos : pos + n]).raw)
            pos += n
        return b"".join(digests)


async def test_pluggable_chunk_hasher_gives_identical_uploads() -> None:
    datas = [rand(3 * MB, 41), floats(MB, 42), b"", b"z" * 70_000]
    results = {}
    for factory in (InProcessChunkHasher, PoolStyleHasher):
        cas = FakeCas()
        s = session(cas, chunk_hasher_factory=factory)
        for i, d in enumerate(datas):
            up = s.start_upload(f"f{i}")
            for start in range(0, len(d), 1_000_003):
                await up.write(d[start : start + 1_000_003])
            await up.finish()
        commit = await s.finalize()
        results[factory.__name__] = ([f.to_dict() for f in commit.files], cas.shards)
    assert results["InProcessChunkHasher"] == results["PoolStyleHasher"]
    assert [f["hash"] for f in results["PoolStyleHasher"][0]] == [
        hash_bytes(d).hex() for d in datas
    ]


async def test_multi_file_roundtrip_and_metrics() -> None:
    cas = FakeCas()
    s = session(cas)
    datas = [b"", b"x", rand(8191, 3), rand(2 * MB, 4), floats(3 * MB, 5), b"ab" * 700_000]
    results = [await s.upload_bytes(d, name=f"f{i}") for i, d in enumerate(datas)]
    commit = await s.finalize()
    assert [r.to_dict() for r in commit.files] == [r.to_dict() for r in results]
    for r, d in zip(results, datas, strict=True):
        assert r.hash == hash_bytes(d).hex()
        assert r.size == len(d) and r.sha256 == hashlib.sha256(d).hexdigest()
        assert cas.reconstruct(r.hash) == d
    m = commit.metrics
    assert m.total_bytes == sum(map(len, datas))
    assert m.new_bytes + m.deduped_bytes + m.deduped_bytes_global == m.total_bytes
    assert m.deduped_bytes > 1_000_000  # the repeated "ab" chunks
    assert m.xorb_bytes_uploaded == cas.xorb_bytes
    assert m.shard_bytes_uploaded == sum(map(len, cas.shards))
    # all new chunks fit one xorb: several small files share it, each file contiguous
    assert m.xorbs_uploaded == 1 and len(cas.xorbs) == 1
    shard = parse_shard(cas.shards[0])
    terms = {f.file_hash.hex(): f.terms for f in shard.files}
    assert len(terms[results[3].hash]) == 1 and len(terms[results[4].hash]) == 1
    assert commit.to_dict()["metrics"]["total_bytes"] == m.total_bytes


async def test_sha256_modes_in_shard() -> None:
    cas = FakeCas()
    s = session(cas)
    digest = hashlib.sha256(b"claimed").hexdigest()
    skipped = await s.upload_bytes(rand(1000, 1), name="skip", sha256=SKIP)
    given = await s.upload_bytes(rand(1000, 2), name="given", sha256=digest)
    empty = await s.upload_bytes(b"", name="empty")
    await s.finalize()
    files = {f.file_hash.hex(): f for f in parse_shard(cas.shards[0]).files}
    assert skipped.sha256 is None and files[skipped.hash].sha256 is None
    assert given.sha256 == digest and files[given.hash].sha256 == bytes.fromhex(digest)
    assert files[empty.hash].sha256 == bytes(32)  # hf_xet writes zeros for empty files
    assert files[empty.hash].terms == [] and files[empty.hash].verification == []
    with pytest.raises(ValueError):
        s.start_upload("bad", sha256="nothex")


async def test_streaming_upload_equals_upload_bytes() -> None:
    data = rand(2 * MB, 7)
    cas = FakeCas()
    s = session(
        cas,
        config=SessionConfig(
            block_size=1 << 20, dedup_window_bytes=1 << 20, max_buffered_bytes=8 << 20
        ),
    )
    up = s.start_upload("streamed", size=len(data))
    rng = random.Random(0)
    pos = 0
    while pos < len(data):
        step = rng.choice([1, 1000, 65536, 300_000])
        await up.write(bytearray(data[pos : pos + step]))  # mutable buffers get copied
        pos += step
    result = await up.finish()
    assert result.hash == hash_bytes(data).hex() and result.size == len(data)
    bad = s.start_upload("short", size=10)
    await bad.write(b"123")
    with pytest.raises(ValueError, match="declared"):
        await bad.finish()
    with pytest.raises(RuntimeError, match=r"finish or abandon these uploads before finalize\(\)"):
        await s.finalize()
    await bad.abandon()  # the streaming API's way out: the commit goes on without it
    with pytest.raises(RuntimeError, match="abandoned"):
        await bad.write(b"4")
    commit = await s.finalize()
    assert [f.name for f in commit.files] == ["streamed"]
    assert cas.reconstruct(result.hash) == data


async def _failing_digest() -> bytes:
    await asyncio.sleep(0)
    raise OSError("the file changed while it was read")


async def test_failed_upload_is_left_out_and_the_commit_goes_on() -> None:
    """A file whose upload fails is abandoned: the commit registers the other files, the
    failed file's packed chunks (which a later file deduplicates against) are uploaded with
    their xorbs, and the buffer bound gets back every byte the failed file held."""
    cas = FakeCas()
    events: list[dict] = []
    s = session(
        cas,
        config=SessionConfig(
            block_size=1 << 20,
            dedup_window_bytes=1 << 20,
            max_buffered_bytes=8 << 20,
            progress_interval=0,
        ),
        progress=events.append,
    )
    a_data, b_data = rand(2 * MB, 21), rand(4 * MB, 22)
    a = await s.upload_bytes(a_data, name="a")
    b = s.start_upload("b", size=len(b_data))
    for i in range(3):  # then reading the rest fails
        await b.write(b_data[i * MB : (i + 1) * MB])
    pipeline = s._pipeline
    assert pipeline is not None
    assert 0 < b._placed < b._written  # some chunks packed, some still pending
    await b.abandon()
    assert b.abandoned and b.result is None
    with pytest.raises(OSError, match="changed"):  # upload_bytes abandons by itself
        await s.upload_bytes(rand(MB, 24), name="d", sha256=_failing_digest())
    assert pipeline.files[2].abandoned
    c_data = b_data[: 2 * MB] + rand(MB, 23)  # shares the failed file's packed chunks
    c = await s.upload_bytes(c_data, name="c")
    commit = await s.finalize()
    assert [f.name for f in commit.files] == ["a", "c"]
    assert commit.metrics.total_bytes == len(a_data) + len(c_data)
    assert commit.metrics.deduped_bytes > 1.5 * MB  # c found b's chunks in the session
    assert sorted(e.file_hash.hex() for e in parse_shard(cas.shards[-1]).files) == sorted(
        [a.hash, c.hash]
    )
    assert cas.reconstruct(a.hash) == a_data and cas.reconstruct(c.hash) == c_data
    assert pipeline.budget.used == 0  # nothing of the failed file is still accounted
    last = events[-1]
    assert last["phase"] == "done"
    assert [f.get("abandoned", False) for f in last["files"]] == [False, True, True, False]
    assert last["bytes_total"] == last["bytes_processed"] == len(a_data) + len(c_data)


async def test_cancelled_upload_is_abandoned() -> None:
    """Cancelling an upload task (an AbortSignal in the browser does that) abandons the
    file; the session's next uploads and its commit work."""
    cas = FakeCas()
    s = session(
        cas,
        config=SessionConfig(
            block_size=1 << 20, dedup_window_bytes=1 << 20, max_buffered_bytes=8 << 20
        ),
    )
    gate = asyncio.Event()

    async def digest_later() -> bytes:
        await gate.wait()
        return bytes(32)

    task = asyncio.ensure_future(s.upload_bytes(rand(6 * MB, 31), name="x", sha256=digest_later()))
    while s._pipeline is None or not s._pipeline.files or s._pipeline.files[0]._written < MB:
        await asyncio.sleep(0)
    task.cancel()  # mid-file: between two blocks
    with pytest.raises(asyncio.CancelledError):
        await task
    pipeline = s._pipeline
    cancelled = pipeline.files[0]
    assert cancelled.abandoned and cancelled._written < 6 * MB
    ok = await s.upload_bytes(rand(MB, 32), name="y")
    commit = await s.finalize()
    assert [f.name for f in commit.files] == ["y"]
    assert cas.reconstruct(ok.hash) == rand(MB, 32)
    assert pipeline.budget.used == 0


async def test_commit_is_a_deprecated_alias_of_finalize() -> None:
    """``commit()`` (the step's old name) warns and does exactly what ``finalize()`` does:
    the file is registered once and the result is the one recorded in ``commits``."""
    cas = FakeCas()
    s = session(cas)
    info = await s.upload_bytes(rand(MB, 41), name="old-name")
    with pytest.warns(DeprecationWarning, match=r"commit\(\) is deprecated, use finalize\(\)"):
        result = await s.commit()
    assert [f.name for f in result.files] == ["old-name"] and len(cas.shards) == 1
    assert s.commits == [result]
    assert cas.reconstruct(info.hash) == rand(MB, 41)


async def test_session_dedup_across_files() -> None:
    cas = FakeCas()
    s = session(cas)
    data = rand(3 * MB, 9)
    a = await s.upload_bytes(data, name="a")
    b = await s.upload_bytes(data[:1_000_000] + b"EDIT" + data[1_000_000:], name="b")
    commit = await s.finalize()
    m = commit.metrics
    assert m.deduped_bytes > 2.5 * MB and m.new_bytes < 3.4 * MB
    assert cas.reconstruct(b.hash)[1_000_000:1_000_004] == b"EDIT"
    assert cas.reconstruct(a.hash) == data


async def test_global_dedup_in_new_session() -> None:
    cas = FakeCas()
    data = rand(4 * MB, 11)
    s1 = session(cas)
    await s1.upload_bytes(data, name="a")
    await s1.finalize()
    sent = cas.xorb_bytes
    s2 = session(cas)
    r = await s2.upload_bytes(data + rand(500_000, 12), name="a2")
    m = (await s2.finalize()).metrics
    assert m.deduped_bytes_global >= len(data) - 200_000  # the last chunk of data may differ
    assert m.new_bytes < 800_000
    assert cas.xorb_bytes - sent == m.xorb_bytes_uploaded < 800_000
    assert m.global_dedup_queries >= 1
    assert cas.reconstruct(r.hash)[: len(data)] == data


async def test_matches_are_extended_along_the_existing_xorb() -> None:
    """Existing xorb X = [a, b, c, a]; uploading c + a must give ONE term X[2:4), not
    X[2:3) + X[0:1) (what a plain per-chunk lookup of ``a`` would return)."""
    k = chunk_data(rand(2 * MB, 31))
    a, b, c = k[1], k[2], k[3]  # interior chunks: their boundaries come from their content
    builder = XorbBuilder()
    builder.add_chunks([a, b, c, a])
    xorb = builder.finish()
    cas = FakeCas()
    assert (
        cas.handle(
            MockRequest("POST", f"http://cas/v1/xorbs/default/{xorb.hash}", {}, xorb.body)
        ).status
        == 200
    )
    s = session(cas)
    r = await s.upload_bytes(c + a)
    m = (await s.finalize()).metrics
    assert m.deduped_bytes_global == len(c) + len(a) and m.xorb_bytes_uploaded == 0
    (entry,) = parse_shard(cas.shards[0]).files
    assert [(t.xorb_hash, t.chunk_start, t.chunk_end) for t in entry.terms] == [(xorb.hash, 2, 4)]
    assert cas.reconstruct(r.hash) == c + a


async def test_expired_dedup_answers_are_not_used() -> None:
    cas = FakeCas(expiry=1000)  # key expired long ago (unix time 1000)
    data = rand(2 * MB, 13)
    s1 = session(cas)
    await s1.upload_bytes(data)
    await s1.finalize()
    s2 = session(cas)
    await s2.upload_bytes(data)
    m = (await s2.finalize()).metrics
    assert m.deduped_bytes_global == 0 and m.new_bytes == len(data)


async def test_slow_dedup_answer_still_used() -> None:
    """Answers arriving while chunks wait in the dedup window are applied to them."""
    cas = FakeCas()
    data = rand(3 * MB, 17)
    s1 = session(cas)
    await s1.upload_bytes(data)
    await s1.finalize()
    plain = cas.transport.handler

    async def slow(req):
        if req.path.startswith("/v1/chunks/"):
            await asyncio.sleep(0.2)
        return plain(req)

    cas.transport.handler = slow
    s2 = session(cas)
    await s2.upload_bytes(data)
    m = (await s2.finalize()).metrics
    assert m.deduped_bytes_global == len(data) and m.xorb_bytes_uploaded == 0


async def test_failed_xorb_upload_sends_no_shard() -> None:
    cas = FakeCas()
    cas.fail_xorbs = True
    s = session(cas)
    await s.upload_bytes(rand(MB, 19))
    with pytest.raises(XetServerError):
        await s.finalize()
    assert not any(p.endswith("shards") for p in cas.paths())
    assert cas.shards == []


async def test_failed_commit_is_forgotten_by_session_dedup() -> None:
    """Chunks packed by a failed commit must not be deduplicated against afterwards: their
    xorbs are not stored (or not registered). The retry uploads them again."""
    cas = FakeCas()
    s = session(cas)
    data = rand(MB, 25)
    cas.fail_xorbs = True
    await s.upload_bytes(data)
    with pytest.raises(XetServerError):
        await s.finalize()
    cas.fail_xorbs = False
    r = await s.upload_bytes(data)
    m = (await s.finalize()).metrics
    assert m.new_bytes == len(data) and m.deduped_bytes == 0
    assert cas.reconstruct(r.hash) == data  # FakeCas refuses terms on unknown xorbs


async def test_no_new_uploads_during_commit() -> None:
    cas = FakeCas()
    plain = cas.transport.handler
    gate = asyncio.Event()

    async def slow(req):
        if "shards" in req.path:
            await gate.wait()
        return plain(req)

    cas.transport.handler = slow
    s = session(cas)
    await s.upload_bytes(rand(10_000, 26))
    committing = asyncio.ensure_future(s.finalize())
    await asyncio.sleep(0.05)
    with pytest.raises(RuntimeError, match=r"finalize\(\) is in progress"):
        s.start_upload("late")
    gate.set()
    await committing
    assert (await s.upload_bytes(b"after")).size == 5


async def test_progress_events() -> None:
    now = [0.0]
    events: list[dict] = []

    def clock() -> float:
        now[0] += 0.04  # every look at the clock "takes" 40 ms
        return now[0]

    async def on_progress(event: dict) -> None:
        events.append(event)

    cas = FakeCas()
    s = session(
        cas,
        progress=on_progress,
        config=SessionConfig(
            block_size=256 * 1024, dedup_window_bytes=1 << 20, max_buffered_bytes=8 << 20
        ),
    )
    s._current().progress.clock = clock
    await s.upload_bytes(rand(3 * MB, 21), name="p")
    await s.finalize()
    phases = [e["phase"] for e in events]
    assert phases[-1] == "done"
    order = ["processing", "uploading_xorbs", "uploading_shard", "done"]
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == order
    processing = [e for e in events if e["phase"] == "processing"]
    # 12 blocks, one tick each (clock read twice per emitted event): throttled to >= 100 ms
    assert 3 <= len(processing) <= 6
    last = events[-1]
    assert last["bytes_total"] == 3 * MB and last["bytes_transferred"] == cas.xorb_bytes
    assert last["files"] == [
        {
            "name": "p",
            "bytes_processed": 3 * MB,
            "size": 3 * MB,
            "bytes_packed": cas.xorb_bytes,  # random data: every chunk is new
            "bytes_uploaded": cas.xorb_bytes,
        }
    ]


async def test_buffered_bytes_stay_bounded_with_slow_uploads() -> None:
    cas = FakeCas()
    plain = cas.transport.handler
    in_flight = 0
    peak_in_flight = 0

    async def slow(req):
        nonlocal in_flight, peak_in_flight
        if req.path.startswith("/v1/xorbs/"):
            in_flight += 1
            peak_in_flight = max(peak_in_flight, in_flight)
            await asyncio.sleep(0.05)
            in_flight -= 1
        return plain(req)

    cas.transport.handler = slow
    limit = 24 << 20
    config = SessionConfig(max_buffered_bytes=limit, dedup_window_bytes=4 << 20, block_size=2 << 20)
    s = session(cas, config=config)
    data = rand(150 * MB // 2, 23)
    r = await s.upload_bytes(data)
    m = (await s.finalize()).metrics
    assert m.xorbs_uploaded >= 2  # 75 MB of incompressible data: more than one xorb
    assert m.peak_buffered_bytes <= limit + config.block_size
    assert cas.reconstruct(r.hash) == data


async def test_finalize_cancellable_until_the_shard_upload_starts() -> None:
    """``finalize_cancellable`` is what the browser's ``finalize({signal})`` asks before it
    cancels a commit: true while xorbs upload (a cancellation then drops the commit: no shard,
    nothing registered, session dedup forgets its chunks, the next commit works), false once
    the shard request is under way."""
    cas = FakeCas()
    plain = cas.transport.handler
    xorb_gate, shard_gate = asyncio.Event(), asyncio.Event()
    seen: dict[str, bool] = {}
    s = session(cas)

    async def slow(req):
        if "xorbs" in req.path and not xorb_gate.is_set():
            seen["during_xorbs"] = s.finalize_cancellable
            await xorb_gate.wait()
        if "shards" in req.path:
            seen["during_shard"] = s.finalize_cancellable
            await shard_gate.wait()
        return plain(req)

    cas.transport.handler = slow
    data = rand(MB, 33)
    assert s.finalize_cancellable  # no commit running
    await s.upload_bytes(data, name="dropped")
    committing = asyncio.ensure_future(s.finalize())
    while "during_xorbs" not in seen:
        await asyncio.sleep(0)
    committing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await committing
    assert seen["during_xorbs"] is True and "during_shard" not in seen
    assert cas.shards == [] and s.finalize_cancellable
    xorb_gate.set()
    # the dropped commit's chunks are not deduplicated against: they are uploaded again
    r = await s.upload_bytes(data, name="again")
    committing = asyncio.ensure_future(s.finalize())
    while "during_shard" not in seen:
        await asyncio.sleep(0)
    assert not s.finalize_cancellable
    shard_gate.set()
    commit = await committing
    assert seen["during_shard"] is False and s.finalize_cancellable
    assert [f.name for f in commit.files] == ["again"] and commit.metrics.new_bytes == len(data)
    assert cas.reconstruct(r.hash) == data


@pytest.mark.parametrize("endpoint", ["not a url", "/relative", "ftp://cas", "http://", "cas:80"])
def test_endpoint_must_be_an_absolute_http_url(endpoint: str) -> None:
    with pytest.raises(ValueError, match=r"absolute http\(s\) URL"):
        XetSession(endpoint, ("tok", 2**40))


def test_endpoint_from_the_token_info_is_checked_too() -> None:
    assert XetSession("https://cas.example/", ("tok", 2**40)).endpoint == "https://cas.example"
    with pytest.raises(ValueError, match=r"absolute http\(s\) URL"):
        XetSession(None, {"token": "tok", "exp": 2**40, "casUrl": "cas.example"})


async def test_upload_after_its_session_was_aborted_says_so() -> None:
    """``abort()`` (or ``aclose()``) while a file is being written: the next write and
    ``finish()`` raise XetAbortedError naming the file; the session's next upload works."""
    from xet_pyodide.errors import XetAbortedError

    cas = FakeCas()
    s = session(cas)
    up = s.start_upload("weights.bin")
    await up.write(rand(MB, 41))
    await s.abort()
    with pytest.raises(XetAbortedError, match=r"'weights\.bin' was stopped: its session"):
        await up.write(rand(MB, 42))
    with pytest.raises(XetAbortedError, match="its session was closed or aborted"):
        await up.finish()
    ok = await s.upload_bytes(rand(MB, 43), name="next")
    commit = await s.finalize()
    assert [f.name for f in commit.files] == ["next"]
    assert cas.reconstruct(ok.hash) == rand(MB, 43)


async def test_cancel_requested_before_the_shard_is_delivered_before_it() -> None:
    """A cancellation requested from a progress callback while the commit runs (what an
    AbortSignal listener does) before the point of no return must stop the commit before its
    shard is sent, even when nothing in between suspends (no xorb left to upload: all
    chunks deduplicated against the first commit)."""
    cas = FakeCas()
    commit_task: asyncio.Task | None = None
    requested: list[bool] = []

    def on_progress(event: dict) -> None:
        if event["phase"] == "uploading_xorbs" and commit_task is not None and not requested:
            requested.append(s.finalize_cancellable)
            commit_task.cancel()

    s = session(cas, progress=on_progress)
    data = rand(MB, 51)
    await s.upload_bytes(data, name="first")
    await s.finalize()
    shards = len(cas.shards)
    await s.upload_bytes(data, name="again")  # fully deduplicated: no new xorb
    commit_task = asyncio.ensure_future(s.finalize())
    with pytest.raises(asyncio.CancelledError):
        await commit_task
    assert requested == [True]
    assert len(cas.shards) == shards  # the second shard was never sent


async def test_retries_are_announced_in_progress_events() -> None:
    """A xorb upload answered 503 twice: two progress events carry ``retry`` (what, attempt,
    delay, reason), every event counts ``retries``, and the caller's own on_retry still hears
    of them; the upload then completes."""
    cas = FakeCas()
    answers = [503, 503]
    handle = cas.handle

    def flaky(req: MockRequest):
        if req.path.startswith("/v1/xorbs/") and answers:
            from xet_pyodide.io.testing import json_response

            return json_response(answers.pop(0), {"error": "busy"})
        return handle(req)

    cas.transport.handler = flaky
    events: list[dict] = []
    mine: list[object] = []
    s = session(
        cas,
        progress=events.append,
        retry=RetryPolicy(max_attempts=4, sleep=_no_sleep, on_retry=mine.append),
    )
    await s.upload_bytes(rand(200_000, 7), name="a.bin")
    await s.finalize()
    retry_events = [e for e in events if "retry" in e]
    assert [e["retry"]["attempt"] for e in retry_events] == [1, 2]
    assert [e["retry"]["reason"] for e in retry_events] == ["HTTP 503", "HTTP 503"]
    assert all(e["retry"]["what"].startswith("xorb upload ") for e in retry_events)
    assert all(e["retry"]["max_attempts"] == 4 and e["retry"]["delay"] >= 0 for e in retry_events)
    assert [e["retries"] for e in retry_events] == [1, 2]
    assert events[-1]["phase"] == "done" and events[-1]["retries"] == 2
    assert "retry" not in events[-1]
    assert len(mine) == 2


def test_xorb_uploads_ask_in_the_order_they_were_sealed() -> None:
    """Bodies detached in any order (here: the later the xorb, the faster its detach) still
    ask for their upload in submission order, so a server can hash a file as its xorbs arrive
    (cas_server/xet_cas_server/hub/early.py); an upload that never reports asking does not
    hold the next back once it ends."""
    from xet_pyodide.core.hashes import MerkleHash
    from xet_pyodide.session.budget import ByteBudget
    from xet_pyodide.session.packing import SealedXorb
    from xet_pyodide.session.xorb_uploads import XorbUploader

    asked: list[int] = []

    class FakeCas:
        async def detach_body(self, body: bytearray, crc64: int | None = None) -> None:
            await asyncio.sleep(0.002 * (8 - body[0]))
            return None

        async def upload_xorb(self, h, body, crc64=None, on_asked=None):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.001)
            asked.append(body[0])
            if body[0] != 3:
                on_asked()
            await asyncio.sleep(0.003)
            from xet_pyodide.io.cas import XorbUploadResult

            return XorbUploadResult(len(body), "grant")

    async def run() -> None:
        uploader = XorbUploader(FakeCas(), ByteBudget(1 << 30), max_concurrent=4)  # type: ignore[arg-type]
        for k in range(8):
            uploader.submit(SealedXorb(MerkleHash(bytes([k]) * 32), bytearray([k] * 16), [], []))
        await uploader.wait_all()

    asyncio.run(run())
    assert asked == list(range(8))
