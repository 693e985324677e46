"""A ``File`` upload's SHA-256 chained by the pool's workers from the shared buffer's slots
(``xet_pyodide/io/pool_sha.py``, op ``sha256blocks`` of ``web/xet_worker.mjs``), in headless
Chromium against the local CAS server: digests equal hashlib's around the 64-byte and block
edges, the shard's metadata extension carries them, a failing link fails the upload with a
typed error, and every slot is given back whatever happened."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tests.browser.conftest import MIB, DemoPage, random_bytes

# Instruments the loaded instance's pool (class-level wrappers, so the instance loadXet made
# is covered): counts the links and the bytes they compressed, tracks the slots held, and
# breaks link number `window.breakLink` (its length made no multiple of 64: the worker refuses
# it as a real failure would come back).
INSTRUMENT_JS = """
async () => {
  return window.demo.xet.pyodide.runPythonAsync(`
from xet_pyodide.io.workers import WorkerPool

if not hasattr(WorkerPool, "_test_original"):
    WorkerPool._test_original = (WorkerPool.acquire, WorkerPool.try_acquire,
                                 WorkerPool.release, WorkerPool.sha256_blocks)
    acquire0, try_acquire0, release0, link0 = WorkerPool._test_original
    WorkerPool.held = set()
    WorkerPool.links = []
    WorkerPool.break_link = 0
    WorkerPool.link_delay = 0.0

    async def acquire(self):
        slot = await acquire0(self)
        WorkerPool.held.add(id(slot))
        return slot

    def try_acquire(self):
        slot = try_acquire0(self)
        if slot is not None:
            WorkerPool.held.add(id(slot))
        return slot

    def release(self, slot):
        WorkerPool.held.discard(id(slot))
        release0(self, slot)

    async def sha256_blocks(self, offset, length, state, head):
        if WorkerPool.link_delay:
            import asyncio
            await asyncio.sleep(WorkerPool.link_delay)
        WorkerPool.links.append(len(head) + length)
        if len(WorkerPool.links) == WorkerPool.break_link:
            length += 1
        return await link0(self, offset, length, state, head)

    WorkerPool.acquire, WorkerPool.try_acquire = acquire, try_acquire
    WorkerPool.release, WorkerPool.sha256_blocks = release, sha256_blocks
"ok"
`);
}
"""

# Resets the counters, uploads the named fixtures one after the other in one session (each
# result or error kept), finalizes if all went well, and reports the links and held slots.
UPLOAD_JS = """
async ({names, blockSize, repo, breakLink, abortAfter, linkDelay}) => {
  const py = window.demo.xet.pyodide;
  py.runPython(`
from xet_pyodide.io.workers import WorkerPool
WorkerPool.links.clear()
WorkerPool.break_link = ${breakLink ?? 0}
WorkerPool.link_delay = ${linkDelay ?? 0}
`);
  const s = await window.writeSession(repo, {blockSize});
  const out = {files: [], errors: []};
  for (const name of names) {
    const blob = await window.fixture(name);
    const options = {name};
    if (abortAfter) {
      const controller = new AbortController();
      options.signal = controller.signal;
      options.onProgress = (e) => {
        if (e.fileBytesProcessed >= abortAfter) controller.abort();
      };
    }
    try {
      out.files.push(await s.uploadFile(blob, options));
    } catch (e) {
      out.errors.push({name: e.name, message: e.message});
    }
  }
  if (!out.errors.length) out.commit = await s.finalize();
  await s.close();
  await new Promise((resolve) => setTimeout(resolve, 200));  // links still running end
  const state = py.runPython(`
from xet_pyodide.io.workers import WorkerPool
[list(WorkerPool.links), len(WorkerPool.held)]
`).toJs();
  out.links = state[0];
  out.held = state[1];
  return out;
}
"""

#: file name -> (size, seed); 4 MiB blocks: the block size, ± 1, a block plus a tail under
#: 1 MiB (read on the page), several blocks, and the 64-byte edges.
SIZES = {
    "e0.bin": (0, 1),
    "e1.bin": (1, 2),
    "e63.bin": (63, 3),
    "e64.bin": (64, 4),
    "b.bin": (4 * MIB, 5),
    "b-1.bin": (4 * MIB - 1, 6),
    "b+1.bin": (4 * MIB + 1, 7),
    "b+tail.bin": (4 * MIB + 700_000, 8),
    "3b+x.bin": (3 * 4 * MIB + 12_345, 9),
}
#: (for the other tests)
OTHERS = {"odd.bin": (6 * MIB + 100, 10), "big.bin": (40 * MIB + 777, 11)}


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return {name: random_bytes(size, seed) for name, (size, seed) in {**SIZES, **OTHERS}.items()}


EIGHT_CORES = (
    "Object.defineProperty(Navigator.prototype, 'hardwareConcurrency', {get: () => 8});"
)


@pytest.fixture(scope="module")
def page(open_page: Any, files: dict[str, bytes]) -> DemoPage:
    # The default (no sha256Worker) is the pool's chain whatever the core count: a navigator
    # claiming 8 cores (the side worker was the default from 4 until 2026-12-07).
    page = open_page(workers=2, init_js=EIGHT_CORES)
    assert page.evaluate("() => [navigator.hardwareConcurrency, window.demo.xet.sha256Worker]") == [
        8, False]
    for name, data in files.items():
        page.add_fixture(name, data)
    assert page.evaluate(INSTRUMENT_JS) == "ok"
    return page


def _shard_sha256s(page: DemoPage) -> dict[str, bytes | None]:
    """File hash (hex) -> the SHA-256 of its metadata extension, over every stored shard."""
    from xet_pyodide.core.shard import parse_shard

    found: dict[str, bytes | None] = {}
    for path in (page.server.data_dir / "shards").rglob("*.shard"):
        for entry in parse_shard(path.read_bytes()).files:
            found[entry.file_hash.hex()] = entry.sha256
    return found


def test_chained_sha256_equals_hashlib_and_reaches_the_shard(
    page: DemoPage, files: dict[str, bytes]
) -> None:
    names = list(SIZES)
    out = page.evaluate(UPLOAD_JS, {"names": names, "blockSize": 4 * MIB, "repo": "test/pool-sha"})
    assert out["errors"] == []
    assert [f["name"] for f in out["files"]] == names
    for f in out["files"]:
        data = files[f["name"]]
        assert f["fileSize"] == len(data)
        assert f["sha256"] == hashlib.sha256(data).hexdigest(), f["name"]
    # Links: one per 4 MiB block read into a slot (whole 64-byte blocks of it); the blocks
    # under 1 MiB (the small files, the 700,000-byte tail) and the last bytes went on the page.
    assert out["links"] == [
        4 * MIB,  # b.bin
        4 * MIB - 64,  # b-1.bin (the last 63 bytes are padded on the page)
        4 * MIB,  # b+1.bin (its last byte: a 1-byte block read on the page)
        4 * MIB,  # b+tail.bin
        4 * MIB, 4 * MIB, 4 * MIB,  # 3b+x.bin (+ 12,345 bytes on the page)
    ]  # fmt: skip
    assert out["held"] == 0
    stored = _shard_sha256s(page)
    for f in out["files"]:
        data = files[f["name"]]
        expected = hashlib.sha256(data).digest() if data else bytes(32)  # as hf_xet
        assert stored[f["fileHash"]] == expected, f["name"]


def test_block_size_not_a_multiple_of_64(page: DemoPage, files: dict[str, bytes]) -> None:
    """Blocks of 2 MiB + 4 bytes: every link after the first starts with the bytes the one
    before left over (``head``)."""
    block = 2 * MIB + 4
    out = page.evaluate(
        UPLOAD_JS, {"names": ["odd.bin"], "blockSize": block, "repo": "test/pool-sha-odd"}
    )
    assert out["errors"] == []
    data = files["odd.bin"]
    assert out["files"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    # 6 MiB + 100 bytes: three slot blocks of 2 MiB + 4, then 88 bytes read on the page.
    # Each link (head + slot bytes) ends on a 64-byte boundary of the file: 2 MiB (4 bytes
    # left over), 4 + 2 MiB - 4 (8 left over), 8 + 2 MiB - 8 (12 left over); the last 100
    # bytes are compressed and padded on the page.
    assert out["links"] == [2 * MIB] * 3
    assert sum(out["links"]) == len(data) - 100
    assert out["held"] == 0


def test_a_failing_link_fails_the_upload_and_frees_the_slots(
    page: DemoPage, files: dict[str, bytes]
) -> None:
    out = page.evaluate(
        UPLOAD_JS,
        {"names": ["3b+x.bin"], "blockSize": 4 * MIB, "repo": "test/pool-sha-fail",
         "breakLink": 2},
    )  # fmt: skip
    assert out["files"] == []
    (error,) = out["errors"]
    assert error["name"] == "XetKernelError", error
    message = "hashing worker failed: sha256blocks: not whole 64-byte blocks"
    assert error["message"] == message, error
    assert len(out["links"]) == 2  # nothing was posted after the failed link
    assert out["held"] == 0
    # the pool goes on: the same file again, whole
    again = page.evaluate(
        UPLOAD_JS, {"names": ["3b+x.bin"], "blockSize": 4 * MIB, "repo": "test/pool-sha-fail"}
    )
    assert again["errors"] == [] and again["held"] == 0
    assert again["files"][0]["sha256"] == hashlib.sha256(files["3b+x.bin"]).hexdigest()


def test_an_aborted_upload_stops_the_chain_and_frees_the_slots(page: DemoPage) -> None:
    out = page.evaluate(
        UPLOAD_JS,
        {"names": ["big.bin"], "blockSize": 4 * MIB, "repo": "test/pool-sha-abort",
         "abortAfter": 4 * MIB, "linkDelay": 0.05},
    )  # fmt: skip
    # Each link waits 50 ms first, so the chain needs ≥ 0.5 s for the file's 10 blocks: the
    # abort, asked at the first progress event past 4 MiB, comes before its end. (Without
    # the delay the whole 40 MiB could be chained before that event: seen once, 2026-12-07.)
    assert out["files"] == []
    assert [e["name"] for e in out["errors"]] == ["AbortError"]
    assert len(out["links"]) < 10  # stopped before the file's end (10 blocks of 4 MiB)
    assert out["held"] == 0
    assert not [
        line for line in page.console
        if "never retrieved" in line or "destroyed but it is pending" in line
    ]  # fmt: skip


HASH_JS = """
async ({names, blockSize}) => {
  const py = window.demo.xet.pyodide;
  py.runPython(`
from xet_pyodide.io.workers import WorkerPool
WorkerPool.links.clear()
WorkerPool.break_link = 0
`);
  const out = [];
  for (const name of names) {
    out.push(await window.demo.xet.hashFile(await window.fixture(name), {sha256: true, blockSize}));
  }
  const state = py.runPython(`
from xet_pyodide.io.workers import WorkerPool
[len(WorkerPool.links), len(WorkerPool.held)]
`).toJs();
  return {out, links: state[0], held: state[1]};
}
"""


def test_hash_file_sha256_on_the_same_chain(page: DemoPage, files: dict[str, bytes]) -> None:
    """``hashFile(blob, {sha256: true})`` chains the SHA-256 from the slots its workers read
    (every block, the short last one included, is a link), instead of reading the Blob on the
    page."""
    names = ["e0.bin", "e63.bin", "b-1.bin", "b+tail.bin", "odd.bin"]
    got = page.evaluate(HASH_JS, {"names": names, "blockSize": 4 * MIB})
    for name, result in zip(names, got["out"], strict=True):
        assert result["sha256"] == hashlib.sha256(files[name]).hexdigest(), name
        assert result["fileSize"] == len(files[name])
    # links: none for the empty file and for 63 bytes (< 64: padded on the page), one for
    # b-1.bin, two for b+tail.bin, two for odd.bin (4 MiB + 2 MiB + 100)
    assert got["links"] == 5
    assert got["held"] == 0
