"""Download internals without a server: reconstruction parsing and planning, the streaming
record decoder, the chunk cache, and the whole pipeline against
a scripted CAS (``FakeCas``) that can expire URLs, fail, and corrupt bytes on demand."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest

from xet_pyodide.core.compression import Scheme
from xet_pyodide.core.hashes import MerkleHash, file_hash
from xet_pyodide.core.reconstruction import parse_reconstruction, plan_download
from xet_pyodide.core.xorb import Xorb, XorbBuilder
from xet_pyodide.errors import (
    XetFormatError,
    XetIntegrityError,
    XetProtocolError,
    XetRangeError,
)
from xet_pyodide.io.cache import ChunkCache, DiskStore, MemoryStore, slice_records
from xet_pyodide.io.retry import RetryPolicy
from xet_pyodide.io.testing import MockRequest, MockTransport, json_response
from xet_pyodide.io.transport import Response
from xet_pyodide.session import SessionConfig, XetSession, download_decode
from xet_pyodide.session.download_decode import RecordDecoder, decode_records, output_buffer

X1 = MerkleHash(bytes(range(32)))
X2 = MerkleHash(bytes(range(1, 33)))


def chunks_of(seed: int, n: int, size: int = 10_000) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        if k % 2:
            out.append(rng.randbytes(size))  # raw records
        else:
            out.append((b"xet %d " % k) * (size // 8))  # LZ4 records
    return out


def build_xorb(chunks: list[bytes], scheme: Scheme | None = None) -> Xorb:
    builder = XorbBuilder(scheme)
    builder.add_chunks(chunks)
    return builder.finish()


# --------------------------------------------------------------------------- reconstruction


def v2_doc(offset: int = 0) -> dict[str, Any]:
    return {
        "offset_into_first_range": offset,
        "terms": [
            {"hash": X1.hex(), "unpacked_length": 300, "range": {"start": 0, "end": 3}},
            {"hash": X2.hex(), "unpacked_length": 50, "range": {"start": 5, "end": 6}},
            {"hash": X1.hex(), "unpacked_length": 200, "range": {"start": 1, "end": 3}},
        ],
        "xorbs": {
            X1.hex(): [
                {
                    "url": "http://s/x1",
                    "ranges": [
                        {"chunks": {"start": 0, "end": 3}, "bytes": {"start": 0, "end": 99}}
                    ],
                }
            ],
            X2.hex(): [
                {
                    "url": "http://s/x2",
                    "ranges": [
                        {"chunks": {"start": 0, "end": 2}, "bytes": {"start": 0, "end": 40}},
                        {"chunks": {"start": 5, "end": 6}, "bytes": {"start": 90, "end": 120}},
                    ],
                }
            ],
        },
    }


def test_parse_v2_and_plan_reuses_fetch_ranges() -> None:
    rec = parse_reconstruction(json.dumps(v2_doc(offset=10)))
    assert rec.version == 2 and rec.unpacked_length == 550
    plan = plan_download(rec, 520)
    # X1's one range serves terms 0 and 2 (chunks 1..3 used twice); X2's second range term 1.
    assert [p.fetch_index for p in plan.terms] == [0, 1, 0]
    assert [(f.xorb, f.chunk_start, f.byte_start) for f in plan.fetches] == [
        (X1, 0, 0),
        (X2, 5, 90),
    ]
    assert plan.last_use == (2, 1)
    assert [(p.skip, p.take) for p in plan.terms] == [(10, 290), (0, 50), (0, 180)]
    assert plan.length == 520
    assert plan.term_file_offsets(1000) == [990, 1290, 1340]


def test_parse_v1_fetch_info() -> None:
    doc = {
        "offset_into_first_range": 0,
        "terms": [{"hash": X1.hex(), "unpacked_length": 7, "range": {"start": 2, "end": 4}}],
        "fetch_info": {
            X1.hex(): [
                {
                    "range": {"start": 2, "end": 4},
                    "url": "https://u",
                    "url_range": {"start": 5, "end": 30},
                }
            ]
        },
    }
    rec = parse_reconstruction(doc)
    (fetch,) = rec.all_fetches()
    assert rec.version == 1
    assert (fetch.chunk_start, fetch.chunk_end, fetch.byte_start, fetch.byte_end) == (2, 4, 5, 30)
    assert plan_download(rec).length == 7


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("terms"),
        lambda d: d.update(offset_into_first_range=300),  # not inside the first term
        lambda d: d["terms"][0].update(unpacked_length=-1),
        lambda d: d["terms"][0].update(range={"start": 3, "end": 3}),
        lambda d: d["terms"][1].update(range={"start": 5, "end": 7}),  # no covering range
        lambda d: d["xorbs"][X1.hex()][0].update(url="ftp://x"),
        lambda d: d["xorbs"][X1.hex()][0]["ranges"][0].update(bytes={"start": 0, "end": 9}),
        lambda d: d.pop("xorbs"),
        lambda d: d["terms"][0].update(hash="zz"),
    ],
)
def test_malformed_reconstructions_are_refused(mutate: Any) -> None:
    doc = v2_doc()
    mutate(doc)
    with pytest.raises(XetProtocolError):  # XetFormatError (bad hash) is a subclass
        parse_reconstruction(doc)
    with pytest.raises(XetProtocolError):
        parse_reconstruction(b"{not json")


def test_plan_refuses_short_reconstruction() -> None:
    with pytest.raises(XetProtocolError, match="holds 550 bytes"):
        plan_download(parse_reconstruction(v2_doc()), 551)


# --------------------------------------------------------------------------- decoding


def test_record_decoder_any_block_split_and_checks() -> None:
    chunks = chunks_of(1, 9)
    xorb = build_xorb(chunks)
    expected = b"".join(chunks)
    rng = random.Random(2)
    for _ in range(20):
        decoder = RecordDecoder(len(chunks), size_hint=rng.choice([0, 5, len(expected)]))
        pos = 0
        while pos < len(xorb.body):
            step = rng.choice([1, 3, 8, 9, 1000, 40_000])
            decoder.feed(xorb.body[pos : pos + step])
            pos += step
        decoded = decoder.finish()
        assert bytes(decoded.data) == expected
        assert decoded.sizes(0, 9) == [len(c) for c in chunks]
    body = xorb.body
    with pytest.raises(XetFormatError, match="holds 8 whole chunk records"):
        decode_records(body[: xorb.record_offsets[8] + 20], 9)
    with pytest.raises(XetFormatError, match="more than 8 chunks"):
        decode_records(body, 8)
    bad = bytearray(body)
    bad[0] = 1  # version 1
    with pytest.raises(XetFormatError, match="version"):
        decode_records(bad, 9)
    bad = bytearray(body)
    bad[4] = 9  # unknown scheme
    with pytest.raises(XetFormatError, match="scheme"):
        decode_records(bad, 9)


def test_output_buffer_sizes_and_uninitialized_factory() -> None:
    # CPython reaches PyByteArray_FromStringAndSize through ctypes (Pyodide too)
    assert download_decode._UNINITIALIZED is not None
    for n in (0, 1, 65_535, 65_536, 3 << 20):
        buf = output_buffer(n)
        assert type(buf) is bytearray
        assert len(buf) == n
    assert output_buffer(-5) == bytearray()
    assert output_buffer(100) == bytearray(100)  # small ones are plain (zeroed) bytearrays
    big = output_buffer(1 << 20)
    big[-1] = 7
    big[:3] = b"abc"
    assert (bytes(big[:3]), big[-1]) == (b"abc", 7)


def test_record_decoder_never_shows_unwritten_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoded buffers are not zero-filled: whatever they held before must never reach the
    output (the tail past the last chunk is cut, a grown buffer holds only decoded bytes)."""
    monkeypatch.setattr(download_decode, "_UNINITIALIZED", lambda n: bytearray(b"\xaa" * n))
    chunks = chunks_of(1, 9)
    xorb = build_xorb(chunks)
    expected = b"".join(chunks)
    for hint in (len(expected) + 200_000, len(expected), 70_000):
        decoder = RecordDecoder(len(chunks), size_hint=hint)
        for pos in range(0, len(xorb.body), 9_999):
            decoder.feed(xorb.body[pos : pos + 9_999])
        decoded = decoder.finish()
        assert len(decoded.data) == len(expected)
        assert bytes(decoded.data) == expected


def test_bg4_records_decode() -> None:
    import struct

    floats = struct.pack("<4096f", *[i * 0.25 for i in range(4096)])
    xorb = build_xorb([floats, floats[:9000]], Scheme.BG4_LZ4)
    assert bytes(decode_records(xorb.body, 2).data) == floats + floats[:9000]


# --------------------------------------------------------------------------- cache


async def test_cache_containment_lru_and_persistence(tmp_path: Any) -> None:
    xorb = build_xorb(chunks_of(3, 6))
    cache = await ChunkCache(DiskStore(tmp_path), max_bytes=len(xorb.body) + 10).open()
    await cache.put(xorb.hash, 0, 6, xorb.body)
    part = await cache.get(xorb.hash, 2, 4)  # served by the containing entry
    assert part is not None
    assert bytes(part) == xorb.body[xorb.record_offsets[2] : xorb.record_offsets[4]]
    await cache.put(xorb.hash, 2, 4, xorb.body[xorb.record_offsets[2] : xorb.record_offsets[4]])
    assert cache.keys() == [(xorb.hash, 0, 6)]  # contained: not stored again
    # Survives a "restart": a new cache over the same directory finds the entry.
    again = await ChunkCache(DiskStore(tmp_path), max_bytes=1 << 30).open()
    assert again.keys() == [(xorb.hash, 0, 6)]
    assert bytes(await again.get(xorb.hash, 0, 6) or b"") == xorb.body
    # Size cap: a second xorb evicts the least recently used first one.
    other = build_xorb(chunks_of(4, 6))
    await cache.put(other.hash, 0, 6, other.body)
    assert cache.keys() == [(other.hash, 0, 6)] and cache.evictions == 1
    assert await cache.get(xorb.hash, 0, 1) is None
    await cache.invalidate(other.hash, 5, 6)
    assert len(cache) == 0 and cache.total_bytes == 0
    assert slice_records(xorb.body[:20], 0, 0, 6) is None


async def test_memory_cache_drops_contained_entries() -> None:
    xorb = build_xorb(chunks_of(5, 4))
    cache = await ChunkCache(MemoryStore(), 1 << 30).open()
    o = xorb.record_offsets
    await cache.put(xorb.hash, 1, 2, xorb.body[o[1] : o[2]])
    await cache.put(xorb.hash, 3, 4, xorb.body[o[3] : o[4]])
    await cache.put(xorb.hash, 0, 4, xorb.body)
    assert cache.keys() == [(xorb.hash, 0, 4)] and cache.total_bytes == len(xorb.body)


# --------------------------------------------------------------------------- pipeline


class FakeCas:
    """A scripted CAS serving one file made of ``terms`` over in-memory xorbs.

    ``terms``: ``(xorb index, chunk start, chunk end)`` in file order. Reconstructions honour
    ``Range`` like the real server (offset, terms overlapping the range, merged fetch ranges);
    URLs carry a generation that ``expire()`` invalidates (403). ``fail_fetches`` statuses are
    answered to the next xorb GETs; ``corrupt`` flips a payload byte of every xorb GET.
    """

    def __init__(self, xorbs: list[Xorb], terms: list[tuple[int, int, int]]) -> None:
        self.xorbs = xorbs
        self.terms = terms
        offsets = [x.unpacked_offsets() for x in xorbs]
        self.term_len = [offsets[i][e] - offsets[i][s] for i, s, e in terms]
        self.data = b"".join(b"".join(self._chunk(i, k) for k in range(s, e)) for i, s, e in terms)
        self.hash = file_hash(
            [
                (xorbs[i].chunk_hashes[k], xorbs[i].chunk_sizes[k])
                for i, s, e in terms
                for k in range(s, e)
            ]
        )
        self.generation = 0
        self.fail_fetches: list[int] = []
        self.corrupt = False
        self.reconstructions = 0
        self.fetches = 0
        self.v2 = True

    def _chunk(self, i: int, k: int) -> bytes:
        from xet_pyodide.core.xorb import decode_xorb

        return decode_xorb(self.xorbs[i].body)[k]

    def expire(self) -> None:
        self.generation += 1

    def handler(self, req: MockRequest) -> Response:
        if "/reconstructions/" in req.url:
            return self._reconstruction(req)
        return self._fetch(req)

    def _reconstruction(self, req: MockRequest) -> Response:
        if "/v2/" in req.url and not self.v2:
            return Response(404, {}, b"")
        self.reconstructions += 1
        size = len(self.data)
        first, last = 0, size - 1
        if req.header("Range"):
            a, b = re.fullmatch(r"bytes=(\d+)-(\d+)", req.header("Range") or "").groups()
            first, last = int(a), min(int(b), size - 1)
            if first >= size:
                return Response(416, {}, b"")
        terms, pos, offset = [], 0, 0
        for (i, s, e), n in zip(self.terms, self.term_len, strict=True):
            if pos + n > first and pos <= last:
                if not terms:
                    offset = first - pos
                terms.append((i, s, e, n))
            pos += n
        wanted: dict[int, list[list[int]]] = {}
        for i, s, e, _ in terms:
            wanted.setdefault(i, []).append([s, e])
        xorbs = {}
        for i, ranges in wanted.items():
            merged: list[list[int]] = []
            for s, e in sorted(ranges):
                if merged and s <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], e)
                else:
                    merged.append([s, e])
            x = self.xorbs[i]
            xorbs[x.hash.hex()] = [
                {
                    "url": f"http://cas/xorb/{i}?gen={self.generation}",
                    "ranges": [
                        {
                            "chunks": {"start": s, "end": e},
                            "bytes": {"start": x.record_offsets[s], "end": x.record_offsets[e] - 1},
                        }
                        for s, e in merged
                    ],
                }
            ]
        doc = {
            "offset_into_first_range": offset,
            "terms": [
                {
                    "hash": self.xorbs[i].hash.hex(),
                    "unpacked_length": n,
                    "range": {"start": s, "end": e},
                }
                for i, s, e, n in terms
            ],
            "xorbs": xorbs,
        }
        if "/v1/" in req.url:
            doc["fetch_info"] = {
                h: [
                    {"range": r["chunks"], "url": entry["url"], "url_range": r["bytes"]}
                    for entry in entries
                    for r in entry["ranges"]
                ]
                for h, entries in doc.pop("xorbs").items()
            }
        return json_response(200, doc)

    def _fetch(self, req: MockRequest) -> Response:
        self.fetches += 1
        assert req.header("Authorization") is None  # never our bearer on presigned URLs
        m = re.fullmatch(r"http://cas/xorb/(\d+)\?gen=(\d+)", req.url)
        assert m, req.url
        if int(m.group(2)) != self.generation:
            return Response(403, {}, b"expired")
        if self.fail_fetches:
            status = self.fail_fetches.pop(0)
            return Response(status, {"retry-after": "0"} if status == 429 else {}, b"")
        a, b = re.fullmatch(r"bytes=(\d+)-(\d+)", req.header("Range") or "").groups()
        body = bytearray(self.xorbs[int(m.group(1))].body[int(a) : int(b) + 1])
        if self.corrupt:
            body[-1] ^= 0x55  # the last payload byte of the range (a raw chunk here)
        return Response(206, {}, bytes(body))


async def _no_sleep(_: float) -> None:
    return None


def session_for(
    cas: FakeCas, *, browser: bool = False, cache: Any = False, **cfg: Any
) -> XetSession:
    transport = MockTransport(cas.handler, browser=browser, stream_block=3000)
    return XetSession(
        "http://cas",
        ("tok", 10**10),
        transport=transport,
        retry=RetryPolicy(max_attempts=4, sleep=_no_sleep),
        config=SessionConfig(**cfg),
        chunk_cache=cache,
    )


def dedup_fake() -> FakeCas:
    """Two xorbs; terms reuse chunks (chunk 1..3 of xorb 0 twice) and interleave the xorbs."""
    x0, x1 = build_xorb(chunks_of(10, 6)), build_xorb(chunks_of(11, 5))
    return FakeCas([x0, x1], [(0, 0, 4), (1, 1, 3), (0, 1, 4), (1, 0, 5), (0, 5, 6)])


@pytest.mark.parametrize("browser", [False, True], ids=["whole-bodies", "streamed"])
async def test_pipeline_full_ranges_and_stream(browser: bool) -> None:
    cas = dedup_fake()
    data = cas.data
    async with session_for(cas, browser=browser, max_concurrent_downloads=2) as s:
        assert await s.download_bytes(cas.hash.hex(), len(data)) == data
        assert s.last_download is not None and s.last_download.verified == "file"
        assert s.last_download.ranges == 3  # x0 [0,4)∪[1,4) merged, x1 [0,5), x0 [5,6)
        rng = random.Random(7)
        for _ in range(15):
            a = rng.randrange(len(data))
            b = a + rng.choice([0, 1, 9_999, 10_000, 40_000, len(data)])
            got = await s.download_bytes(cas.hash, len(data), byte_range=(a, b))
            assert got == data[a : b + 1], (a, b)
        blocks = [b async for b in s.download_stream(cas.hash, len(data), block_size=7777)]
        assert b"".join(blocks) == data
        assert {len(b) for b in blocks[:-1]} == {7777}
        with pytest.raises(XetRangeError):
            await s.download_bytes(cas.hash, len(data), byte_range=(len(data), len(data) + 5))


async def test_v1_fallback() -> None:
    cas = dedup_fake()
    cas.v2 = False
    async with session_for(cas) as s:
        assert (
            await s.download_bytes(cas.hash, len(cas.data), byte_range=(5, 50_000))
            == cas.data[5:50_001]
        )
        assert await s.download_bytes(cas.hash, len(cas.data)) == cas.data
        assert s.cas.use_reconstruction_v2 is False


@pytest.mark.parametrize("browser", [False, True], ids=["whole-bodies", "streamed"])
async def test_expired_urls_fetch_a_fresh_reconstruction(browser: bool) -> None:
    cas = dedup_fake()
    original = cas.handler

    def expire_after_reconstruction(req: MockRequest) -> Response:
        resp = original(req)
        if "/reconstructions/" in req.url and cas.reconstructions == 1:
            cas.expire()  # every URL of the first reconstruction is dead on arrival
        return resp

    cas.handler = expire_after_reconstruction  # type: ignore[method-assign]
    async with session_for(cas, browser=browser) as s:
        assert await s.download_bytes(cas.hash, len(cas.data)) == cas.data
        stats = s.last_download
        assert stats is not None
        assert stats.url_refreshes == 1 and cas.reconstructions == 2


async def test_5xx_and_429_are_retried() -> None:
    cas = dedup_fake()
    cas.fail_fetches = [503, 429, 500]
    async with session_for(cas, max_concurrent_downloads=1) as s:
        assert await s.download_bytes(cas.hash, len(cas.data)) == cas.data
    assert cas.fetches == 3 + 3


@pytest.mark.parametrize("browser", [False, True], ids=["whole-bodies", "streamed"])
async def test_corrupted_bytes_raise_integrity_error(browser: bool) -> None:
    chunks = [random.Random(k).randbytes(20_000) for k in range(4)]  # raw: decodes "fine"
    xorb = build_xorb(chunks, Scheme.NONE)
    cas = FakeCas([xorb], [(0, 0, 4)])
    cas.corrupt = True
    async with session_for(cas, browser=browser, cache="memory") as s:
        with pytest.raises(XetIntegrityError):
            await s.download_bytes(cas.hash, len(cas.data))
        cache = await s.chunk_cache()
        assert cache is not None and len(cache) == 0  # the bad bytes were not kept
        blocks: list[bytes] = []
        with pytest.raises(XetIntegrityError):
            async for block in s.download_stream(cas.hash, len(cas.data), block_size=30_000):
                blocks.append(block)
        assert sum(map(len, blocks)) < len(cas.data)  # the last block is never released
        cas.corrupt = False
        assert await s.download_bytes(cas.hash, len(cas.data)) == cas.data


async def test_corrupted_cache_entry_is_dropped_and_refetched(tmp_path: Any) -> None:
    """A cached range whose bytes went bad (same record layout, one payload byte flipped) fails
    verification; download_bytes and download_to_file then start over from the network once,
    and succeed."""
    from xet_pyodide.io.cache import key_name

    chunks = [random.Random(k).randbytes(20_000) for k in range(4)]  # raw: still parses
    cas = FakeCas([build_xorb(chunks, Scheme.NONE)], [(0, 0, 4)])
    async with session_for(cas, cache="memory") as s:
        assert await s.download_bytes(cas.hash, len(cas.data)) == cas.data
        cache = await s.chunk_cache()
        assert cache is not None and len(cache) == 1

        async def poison() -> None:
            (key,) = cache.keys()
            stored = bytearray(await cache.store.read(key_name(key)))
            stored[8 + 100] ^= 0xFF  # inside the first record's payload
            assert await cache.store.write(key_name(key), bytes(stored))

        await poison()
        fetched = cas.fetches
        assert await s.download_bytes(cas.hash, len(cas.data)) == cas.data
        assert cas.fetches == fetched + 1  # the second attempt fetched the range again
        assert s.last_download is not None and s.last_download.cache_hits == 0
        await poison()
        out = tmp_path / "out.bin"
        await s.download_to_file(cas.hash, len(cas.data), out)
        assert out.read_bytes() == cas.data and cas.fetches == fetched + 2


async def test_cache_serves_repeat_and_ranged_downloads() -> None:
    cas = dedup_fake()
    async with session_for(cas, cache="memory") as s:
        assert await s.download_bytes(cas.hash, len(cas.data)) == cas.data
        fetched = cas.fetches
        assert await s.download_bytes(cas.hash, len(cas.data)) == cas.data
        assert (
            await s.download_bytes(cas.hash, len(cas.data), byte_range=(10_001, 70_000))
            == (cas.data[10_001:70_001])
        )
        assert cas.fetches == fetched  # no xorb bytes fetched again
        assert s.last_download is not None and s.last_download.bytes_fetched == 0


async def test_download_to_file_and_zero_byte_file(tmp_path: Any) -> None:
    cas = dedup_fake()
    out = tmp_path / "out.bin"
    async with session_for(cas) as s:
        stats = await s.download_to_file(cas.hash, len(cas.data), out, byte_range=(3, 12_345))
        assert out.read_bytes() == cas.data[3:12_346] and stats.bytes_total == 12_343
        assert await s.download_bytes(MerkleHash.ZERO, 0) == b""
        with pytest.raises(XetIntegrityError):
            await s.download_bytes(cas.hash, 0)
        cas.corrupt = True
        with pytest.raises(XetIntegrityError):
            await s.download_to_file(cas.hash, len(cas.data), out)
    assert out.read_bytes() == cas.data[3:12_346]  # the old file was left in place
    assert not (tmp_path / "out.bin.xet-part").exists()


@pytest.mark.parametrize("in_process", [False, True], ids=["separate-hasher", "fused"])
async def test_streamed_ranges_are_hashed_while_arriving(
    monkeypatch: Any, in_process: bool
) -> None:
    """A hasher of its own (a worker pool's) gets the decoded chunks in batches while the body
    is still arriving; with the in-process hasher, decoding hashes them in the same kernel
    call instead (no separate batches), with the same verdicts."""
    from xet_pyodide.session import download_fetch, download_pipeline
    from xet_pyodide.session.hasher import InProcessChunkHasher

    monkeypatch.setattr(InProcessChunkHasher, "in_process", in_process)
    monkeypatch.setattr(download_fetch, "HASH_BATCH_BYTES", 15_000)
    calls: list[int] = []
    real = download_pipeline.RangeDownload._hash_decoded

    async def spy(self: Any, decoder: Any, first: int, digests: bytearray) -> int:
        last = await real(self, decoder, first, digests)
        calls.append(last - first)
        return last

    monkeypatch.setattr(download_pipeline.RangeDownload, "_hash_decoded", spy)
    cas = dedup_fake()
    async with session_for(cas, browser=True) as s:
        assert await s.download_bytes(cas.hash, len(cas.data)) == cas.data
        assert s.last_download is not None and s.last_download.verified == "file"
        cas.corrupt = True
        with pytest.raises(XetIntegrityError):
            await s.download_bytes(cas.hash, len(cas.data))
    if in_process:
        assert calls == []
    else:
        assert len(calls) > 3 and sum(1 for n in calls if n) > 3  # several batches per range


@pytest.mark.parametrize("browser", [False, True], ids=["whole-bodies", "streamed"])
async def test_ranges_kept_compressed_decode_piecewise(monkeypatch: Any, browser: bool) -> None:
    """Ranges that decode to much more than they weigh are kept compressed and decoded a few
    chunks at a time (here: every range, in pieces of ~15 kB)."""
    from xet_pyodide.session import download_fetch, download_pipeline

    monkeypatch.setattr(download_fetch, "RAW_ABOVE", 0)
    monkeypatch.setattr(download_fetch, "RAW_PIECE_BYTES", 15_000)
    monkeypatch.setattr(download_pipeline, "RAW_PIECE_BYTES", 15_000)
    cas = dedup_fake()
    data = cas.data
    async with session_for(cas, browser=browser, cache="memory") as s:
        pieces = [bytes(p) async for p in s.download_pieces(cas.hash, len(data))]
        assert b"".join(pieces) == data and len(pieces) > 8
        assert max(map(len, pieces)) <= 20_000  # one ~10 kB chunk past 15 kB at most
        assert s.last_download is not None and s.last_download.verified == "file"
        assert s.last_download.peak_buffered_bytes < len(data)
        rng = random.Random(9)
        for _ in range(12):
            a = rng.randrange(len(data))
            b = a + rng.choice([0, 1, 9_999, 30_000, len(data)])
            assert await s.download_bytes(cas.hash, len(data), byte_range=(a, b)) == data[a : b + 1]
        cache = await s.chunk_cache()
        assert cache is not None
        await cache.clear()
        cas.corrupt = True
        with pytest.raises(XetIntegrityError):
            await s.download_bytes(cas.hash, len(data))
        assert len(cache) == 0


async def test_pool_span_hasher_rounds_match_in_process_hashes() -> None:
    """PoolSpanHasher (worker pools: Pyodide only) against a fake pool with small slots."""
    from types import SimpleNamespace

    from xet_pyodide.core.hashes import DATA_KEY
    from xet_pyodide.io.pool_spans import PoolSpanHasher, span_hasher_for
    from xet_pyodide.kernels import get_kernels

    class FakePool:
        size = 4

        def __init__(self) -> None:
            self.memory = bytearray(60_000)
            self.rounds: list[int] = []

        async def acquire(self) -> Any:
            return SimpleNamespace(data=0, data_cap=len(self.memory))

        def release(self, slot: Any) -> None:
            pass

        def write(self, offset: int, data: memoryview) -> None:
            self.memory[offset : offset + len(data)] = data

        async def hash(self, slot: Any, start: int, lengths: list[int]) -> bytes:
            self.rounds.append(len(lengths))
            view = memoryview(self.memory)[start : start + sum(lengths)]
            return get_kernels().blake3_keyed_many(view, lengths, DATA_KEY)

    chunks = chunks_of(12, 9, size=13_000)
    data = memoryview(b"".join(chunks))
    lengths = [len(c) for c in chunks]
    expected = get_kernels().blake3_keyed_many(data, lengths, DATA_KEY)
    pool = FakePool()
    factory = SimpleNamespace(pool=pool)  # a PoolHasherFactory's face (io.pool_hasher needs js)
    hasher = span_hasher_for(factory)
    assert isinstance(hasher, PoolSpanHasher)
    assert await PoolSpanHasher(pool, local_below=0).hash_spans(data, lengths) == expected
    assert sum(pool.rounds) == 9 and len(pool.rounds) >= 2  # a 60 kB slot per round
    pool.size = 2
    assert span_hasher_for(factory) is None  # small pools: hash on this thread


async def test_a_worker_decode_of_too_many_chunks_for_its_bytes_is_refused_before_the_get() -> None:
    """The worker sizes its chunk tables from the claimed chunk count up front: a range whose
    bytes cannot hold that many records (8-byte headers) never reaches it (nor the network)."""
    from types import SimpleNamespace

    from xet_pyodide.core.reconstruction import FetchRange
    from xet_pyodide.session.download_fetch import FetchUnit, RangeFetcher

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no GET for a range that cannot hold its chunks")

    fetch = FetchRange(MerkleHash(bytes(32)), "http://127.0.0.1/x", 0, 1_000_000, 0, 7_999_999)
    fetcher = SimpleNamespace(
        _cas=SimpleNamespace(open_xorb_range=no_network),
        _xorb_http=None,
        _needs_hashes=lambda unit: True,
    )
    unit = FetchUnit(fetch, 1 << 20, holds_raw=False, worker_blobs=True)
    with pytest.raises(XetFormatError, match="8000000 bytes cannot hold 1000001 chunk"):
        await RangeFetcher._worker_attempt(
            fetcher, unit, FetchRange(fetch.xorb, fetch.url, 0, 1_000_001, 0, 7_999_999)
        )  # type: ignore[arg-type]
    # exactly enough bytes for the headers gets as far as the GET
    with pytest.raises(AssertionError, match="no GET"):
        await RangeFetcher._worker_attempt(fetcher, unit, fetch)  # type: ignore[arg-type]
