"""Upload resume journals without a server: framing, torn writes, foreign headers, expiry,
size, and the directory store (xet_pyodide/session/resume.py, io/resume_dir.py)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

from xet_pyodide.core.hashes import chunk_hash, xorb_hash
from xet_pyodide.io.resume_dir import DirectoryResumeBackend, default_resume_dir
from xet_pyodide.session.packing import SealedXorb
from xet_pyodide.session.resume import (
    UploadResume,
    encode_header,
    encode_xorb,
    journal_name,
    parse_journal,
)

EP = "http://127.0.0.1:1"


def _xorb(seed: int, n: int = 40, size: int = 65536) -> SealedXorb:
    rng = random.Random(seed)
    hashes = [chunk_hash(rng.randbytes(32)) for _ in range(n)]
    sizes = [size - rng.randrange(1000) for _ in range(n)]
    h = xorb_hash(list(zip(hashes, sizes, strict=True)))
    return SealedXorb(h, bytearray(), hashes, sizes)


def _frame(x: SealedXorb, when: float = 1000.0) -> bytes:
    return encode_xorb(when, x.hash, b"".join(h.raw for h in x.chunk_hashes), x.chunk_sizes)


def test_parse_keeps_frames_before_a_torn_or_corrupt_one() -> None:
    a, b, c = _xorb(1), _xorb(2), _xorb(3)
    good = encode_header(EP, "") + _frame(a) + _frame(b)
    parsed = parse_journal(good, EP, "")
    assert parsed.problem is None and [r.xorb.hash for r in parsed.records] == [a.hash, b.hash]
    for cut in (1, 7, 8, 100):
        torn = parse_journal(good + _frame(c)[:-cut], EP, "")
        assert torn.problem is not None and len(torn.records) == 2
    flipped = bytearray(good + _frame(c))
    flipped[-3] ^= 0x40
    parsed = parse_journal(bytes(flipped), EP, "")
    assert "checksum" in (parsed.problem or "") and len(parsed.records) == 2
    # a frame whose xorb hash does not match its chunks (well framed) ends the journal too
    bad = encode_xorb(1.0, a.hash, b"".join(h.raw for h in b.chunk_hashes), b.chunk_sizes)
    parsed = parse_journal(good + bad + _frame(c), EP, "")
    assert "invalid xorb" in (parsed.problem or "") and len(parsed.records) == 2


def test_parse_refuses_foreign_or_garbled_headers() -> None:
    body = _frame(_xorb(1))
    assert parse_journal(encode_header("http://other", "") + body, EP, "").records == []
    assert parse_journal(encode_header(EP, "repo") + body, EP, "").records == []
    assert parse_journal(b"\x00" * 64, EP, "").problem is not None
    assert parse_journal(os.urandom(5000), EP, "").records == []
    assert parse_journal(body, EP, "").records == []  # no header at all
    assert parse_journal(b"", EP, "").problem is None


def test_journal_size_is_under_one_percent_of_the_bytes() -> None:
    for size in (8192, 65536):  # the minimum chunk, the average chunk
        x = _xorb(4, n=1000, size=size)
        frame = _frame(x)
        assert len(frame) / sum(x.chunk_sizes) < 0.01


def test_store_appends_expires_and_forgets(tmp_path: Path) -> None:
    now = [1_000_000.0]
    backend = DirectoryResumeBackend(tmp_path / "r")

    def resume() -> UploadResume:
        return UploadResume(backend, EP, "", max_age=100, verify=False, clock=lambda: now[0])

    async def scenario() -> None:
        first = resume()
        await first.load_into(None, {})  # type: ignore[arg-type]
        xs = [_xorb(i) for i in range(3)]
        for x in xs:
            first.acknowledged(x)
        await first.flush()
        name = journal_name(EP, "")
        assert (tmp_path / "r" / f"{name}.xrs").exists()
        index: dict[bytes, object] = {}
        second = resume()
        await second.load_into(None, index)  # type: ignore[arg-type]
        assert second.loaded_xorbs == 3 and len(index) == 3 * 40
        await second.forget([xs[0].hash])
        third = resume()
        await third.load_into(None, {})  # type: ignore[arg-type]
        assert third.xorb_hashes == {xs[1].hash, xs[2].hash}
        now[0] += 101  # past max_age: records dropped, the journal deleted
        fourth = resume()
        index = {}
        await fourth.load_into(None, index)  # type: ignore[arg-type]
        assert index == {} and not (tmp_path / "r" / f"{name}.xrs").exists()

    asyncio.run(scenario())


def test_torn_tail_is_cut_before_the_next_append(tmp_path: Path) -> None:
    backend = DirectoryResumeBackend(tmp_path)
    name = journal_name(EP, "")
    a, b = _xorb(1), _xorb(2)
    now = time.time()
    (tmp_path / f"{name}.xrs").write_bytes(encode_header(EP, "") + _frame(a, now)[:-5])

    async def scenario() -> None:
        r = UploadResume(backend, EP, "", verify=False, clock=lambda: now)
        await r.load_into(None, {})  # type: ignore[arg-type]
        assert r.problem is not None and r.loaded_xorbs == 0
        r.acknowledged(b)
        await r.flush()

    asyncio.run(scenario())
    parsed = parse_journal((tmp_path / f"{name}.xrs").read_bytes(), EP, "")
    assert parsed.problem is None and [x.xorb.hash for x in parsed.records] == [b.hash]


def test_sweep_and_default_dir(tmp_path: Path, monkeypatch) -> None:
    backend = DirectoryResumeBackend(tmp_path)
    old, new = tmp_path / "a.xrs", tmp_path / "b.xrs"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    os.utime(old, (1000, 1000))
    assert asyncio.run(backend.sweep(3600)) == 1
    assert not old.exists() and new.exists()
    monkeypatch.setenv("XET_PYODIDE_RESUME_DIR", "off")
    assert default_resume_dir() is None
    monkeypatch.setenv("XET_PYODIDE_RESUME_DIR", str(tmp_path / "d"))
    assert default_resume_dir() == tmp_path / "d"
    monkeypatch.delenv("XET_PYODIDE_RESUME_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_resume_dir() == tmp_path / "cache" / "xet_pyodide" / "resume"
