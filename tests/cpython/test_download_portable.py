"""Our downloads in every runtime (CPython, Pyodide in Node, Pyodide in Chromium) against the
local CAS server, of files uploaded by hf_xet: 0 B, 1 B, text, random, float32 (BG4), a file
whose terms reuse chunks, a 70 MB file spanning two xorbs, and a deduplicated file whose terms
point into other files' xorbs. Full downloads, streams and ranges must equal the originals; see
tests/portable/download_checks.py.
Pyodide runs them through pytest-pyodide's ``run_in_pyodide`` (``in_pyodide`` below, the ``rt``
fixture: tests/plugins/pyodide.py)."""

from __future__ import annotations

from typing import Any

from pytest_pyodide import run_in_pyodide

from tests.plugins.download_corpus import Corpus, sha

RANGES = {
    "one": [[0, 0], [0, 5]],
    "text": [[0, 0], [69_999, 69_999], [100, 65_636], [8_000, 200_000]],
    "random": [[1, 1_000_000], [2_999_000, 2_999_999], [131_071, 131_073]],
    "floats": [[4, 1_234_567]],
    "repetitive": [[99_990, 100_010], [250_000, 2_750_000]],
    "big": [[66_000_000, 68_000_000]],  # across the boundary of its two xorbs
    "dedup": [[0, 3_500_004], [1_599_990, 2_000_010], [3_499_990, 3_600_000]],
}
STREAM_BLOCK = {"random": 1 << 20, "dedup": 999_999, "text": 4096}


@run_in_pyodide(packages=["xet-pyodide"])
async def in_pyodide(selenium, module, func, args):
    """``tests/portable/<module>.<func>(*args)`` inside Pyodide (the ``rt`` fixture calls it)."""
    import importlib
    import inspect

    result = getattr(importlib.import_module(f"tests.portable.{module}"), func)(*args)
    return (await result) if inspect.isawaitable(result) else result


def call(rt: Any, func: str, *args: Any) -> Any:
    """Run ``download_checks.func`` in the runtime."""
    return rt.call("download_checks", func, *args)


def test_download_corpus_in_runtime(rt, corpus: Corpus) -> None:
    names = ["empty", "one", "text", "random", "floats", "repetitive", "big", "dedup"]
    items = [
        corpus.item(n, ranges=RANGES.get(n, []), stream_block=STREAM_BLOCK.get(n)) for n in names
    ]
    token, exp = corpus.read_token()
    corpus.server.reset_stats()
    result = call(rt, "download_files", corpus.server.url, token, exp, items)
    if rt.name != "cpython":
        assert result["platform"] == "emscripten"
    expected_cache = {"cpython": "MemoryStore", "node": "MemoryStore", "chrome": "CacheApiStore"}
    assert result["cache"] == expected_cache[rt.name]
    assert result["phases"] == ["downloading", "verifying", "done"]
    for name, got in zip(names, result["files"], strict=True):
        data = corpus.data[name]
        assert got["length"] == len(data), name
        assert got["sha256"] == sha(data), name
        assert got["stats"]["verified"] == "file"
        for (start, end), (digest, length) in zip(RANGES.get(name, []), got["ranges"], strict=True):
            part = data[start : end + 1]
            assert (digest, length) == (sha(part), len(part)), (name, start, end)
        if name in STREAM_BLOCK:
            block = STREAM_BLOCK[name]
            assert got["stream"]["sha256"] == sha(data)
            sizes = got["stream"]["blocks"]
            assert sizes[:-1] == [block] * (len(sizes) - 1) and 0 < sizes[-1] <= block
    empty = result["files"][0]["stats"]
    assert empty["fetch_requests"] == 0 and empty["bytes_fetched"] == 0
    stats = corpus.server.stats()
    # The dedup file reuses xorbs: its full download needs bytes of several xorbs; so does
    # the 70 MB file (more than one 64 MiB xorb).
    assert result["files"][-1]["stats"]["ranges"] >= 2
    assert result["files"][-2]["stats"]["ranges"] >= 2
    assert stats["statuses"]["xorb_fetch"] == {"206": stats["requests"]["xorb_fetch"]}


def test_repeat_download_is_served_by_the_cache(rt, corpus: Corpus) -> None:
    token, exp = corpus.read_token()
    corpus.server.reset_stats()
    out = call(rt, "cached_download", corpus.server.url, token, exp, corpus.item("dedup"))
    first, second = out["runs"]
    assert first["sha256"] == second["sha256"] == sha(corpus.data["dedup"])
    assert first["bytes_fetched"] > 0 and first["cache_hits"] == 0
    assert second["bytes_fetched"] == 0 and second["fetch_requests"] == 0
    assert second["cache_hits"] == second["ranges"] > 0
    assert second["verified"] == "file"
    assert corpus.server.stats()["xorb_bytes_served"] == first["bytes_fetched"]


def test_corrupted_xorb_bytes_never_yield_wrong_data(rt, corpus: Corpus) -> None:
    """Raw (incompressible) chunks with a flipped byte decode fine: only the hashes catch it."""
    token, exp = corpus.read_token()
    corpus.server.set_faults(endpoints={"xorb_fetch": {"corrupt_rate": 1.0}})
    try:
        out = call(
            rt,
            "download_error",
            corpus.server.url,
            token,
            exp,
            corpus.item("random"),
            {"chunk_cache": False},
        )
    finally:
        corpus.server.set_faults()
    assert out["error"] == "XetIntegrityError", out
