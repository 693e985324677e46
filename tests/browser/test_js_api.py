"""The JavaScript API of ``web/xet_pyodide.js`` in headless Chromium, against the real local CAS
server over HTTP (127.0.0.1), checked with hf_xet 1.8.0 (hashes and downloads)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import hf_xet
import pytest

from tests.browser.conftest import MIB, DemoPage, float_like, random_bytes, write_files

# Uploads the named fixtures in one commit through the public API (uploadFile, or uploadBytes
# for *.txt) and returns what JS saw.
# `tokenShape`: "class" (TokenInfo with methods, exp a bigint) or "getters" (a plain object
# with getters, exp a number).
UPLOAD_JS = """
async ({names, ttl, tokenShape, repo}) => {
  const m = await import('/xet_pyodide.js');
  const xet = window.demo.xet;
  const secret = new URLSearchParams(location.search).get('secret');
  let url = `${location.origin}/api/models/${repo}/xet-write-token/main`;
  if (ttl) url += `?ttl=${ttl}`;
  const headers = {Authorization: 'Bearer ' + secret};
  const refreshTimes = [];
  const refresher = {
    async refreshToken() {
      refreshTimes.push(performance.now());
      return m.fetchToken(url, headers);
    },
  };
  const first = await m.fetchToken(url, headers);
  const token = tokenShape === 'getters'
    ? {get token() { return first.token(); }, get exp() { return Number(first.exp()); }}
    : first;
  const sessionEvents = [];
  const s = new xet.XetSession(location.origin, token, refresher,
                               {onProgress: (e) => sessionEvents.push(e)});
  const t0 = performance.now();
  const files = [];
  const fileEvents = {};
  for (const name of names) {
    const blob = await window.fixture(name);
    fileEvents[name] = [];
    const onProgress = (e) => fileEvents[name].push(e);
    files.push(name.endsWith('.txt')  // text fixtures go through uploadBytes
      ? await s.uploadBytes(new Uint8Array(await blob.arrayBuffer()), {name, onProgress})
      : await s.uploadFile(new File([blob], name), {onProgress}));
  }
  const commit = await s.finalize();
  const t1 = performance.now();
  await s.close();
  return {files, commit, refreshTimes, t0, t1, fileEvents,
          lastEvent: sessionEvents[sessionEvents.length - 1],
          phases: [...new Set(sessionEvents.map((e) => e.phase))]};
}
"""

HASH_JS = """
async ({name, options}) => {
  return window.demo.xet.hashFile(await window.fixture(name), options);
}
"""


def upload(page: DemoPage, names: list[str], *, ttl: int | None = None,
           token_shape: str = "class", repo: str = "test/js-api") -> dict[str, Any]:
    return page.evaluate(
        UPLOAD_JS, {"names": names, "ttl": ttl, "tokenShape": token_shape, "repo": repo}
    )


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return {
        "random.bin": random_bytes(5 * MIB + 12345, 1),
        "floats.bin": float_like(3 * MIB, 2),
        "small.txt": b"hello xet\n" * 100,
        "empty.bin": b"",
    }


@pytest.fixture(scope="module")
def page(open_page: Any, files: dict[str, bytes]) -> DemoPage:
    # the uploads here digest their Files on the pool's side worker (by default only from 4
    # cores on; the other browser tests keep the default: hashlib on the page's thread)
    page = open_page(workers=2, sha256Worker=1)
    for name, data in files.items():
        page.add_fixture(name, data)
    return page


@pytest.fixture(scope="module")
def reference_hashes(tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes]
                     ) -> dict[str, str]:
    paths = write_files(tmp_path_factory.mktemp("ref"), files)
    infos = hf_xet.hash_files([str(paths[name]) for name in files])
    return {name: info.hash for name, info in zip(files, infos, strict=True)}


def test_upload_multi_file_and_hf_xet_downloads_identical(
    page: DemoPage, files: dict[str, bytes], reference_hashes: dict[str, str], tmp_path: Path
) -> None:
    assert page.evaluate("() => [window.demo.xet.workers, window.demo.xet.crossOriginIsolated]") \
        == [2, True]
    names = list(files)
    before = page.server.stats()
    out = upload(page, names)
    commit = out["commit"]
    assert [f["name"] for f in commit["files"]] == names
    for f in commit["files"]:
        data = files[f["name"]]
        assert f["fileHash"] == reference_hashes[f["name"]]
        assert f["fileSize"] == len(data)
        assert f["sha256"] == hashlib.sha256(data).hexdigest()
    assert out["files"] == commit["files"]  # uploadFile() results are final already
    metrics = commit["metrics"]
    assert metrics["totalBytes"] == sum(len(d) for d in files.values())
    assert metrics["totalBytes"] == (
        metrics["newBytes"] + metrics["dedupedBytes"] + metrics["dedupedBytesGlobal"]
    )
    assert metrics["xorbBytesUploaded"] > 0 and metrics["shardsUploaded"] == 1
    after = page.server.stats()
    assert after["xorb_bytes_received"] - before["xorb_bytes_received"] \
        == metrics["xorbBytesUploaded"]
    # progress: phases in order, per-file counters complete
    assert out["phases"][0] == "processing" and out["phases"][-1] == "done"
    last = out["lastEvent"]
    for f, name in zip(last["files"], names, strict=True):
        assert f["name"] == name and f["bytesProcessed"] == len(files[name])
        assert f["bytesUploaded"] == f["bytesPacked"]
    assert sum(f["bytesPacked"] for f in last["files"]) == metrics["xorbBytesUploaded"]
    random_events = out["fileEvents"]["random.bin"]
    assert random_events and random_events[-1]["fileBytesProcessed"] == len(files["random.bin"])

    # hf_xet downloads every file byte-identical
    items = [
        {"hash": f["fileHash"], "size": f["fileSize"], "dest": tmp_path / f["name"]}
        for f in commit["files"]
    ]
    # (tokens are scoped: the files are registered in the repository upload() wrote to)
    page.server.hf_download(items, hf_home=tmp_path / "hf-home", repo="models/test/js-api")
    for item, name in zip(items, names, strict=True):
        assert Path(item["dest"]).read_bytes() == files[name], name


def test_reupload_sends_no_xorb_bytes(page: DemoPage, files: dict[str, bytes]) -> None:
    names = ["random.bin", "floats.bin", "small.txt"]
    upload(page, names)  # no-op if the first test already stored them
    before = page.server.stats()
    out = upload(page, names, token_shape="getters")  # a fresh session: global dedup only
    metrics = out["commit"]["metrics"]
    assert metrics["xorbBytesUploaded"] == 0 and metrics["xorbsUploaded"] == 0
    assert metrics["newBytes"] == 0
    assert metrics["dedupedBytesGlobal"] > 0
    after = page.server.stats()
    assert after["xorb_bytes_received"] == before["xorb_bytes_received"]
    assert after["dedup_hits"] > before["dedup_hits"]


def test_short_token_is_refreshed_mid_upload(page: DemoPage) -> None:
    """Tokens of 32 s: refreshes start 2 s into the upload (the session refreshes a token that
    expires within 30 s). Slow dedup answers and xorb uploads make the upload last longer."""
    data = random_bytes(6 * MIB, 7)
    page.add_fixture("refresh.bin", data)
    page.server.set_faults(endpoints={
        "chunks": {"latency_ms": 1500},
        "xorb_grant": {"latency_ms": 1500},
        "xorb_upload": {"latency_ms": 1500},
    })
    try:
        out = upload(page, ["refresh.bin"], ttl=32, repo="test/refresh")
    finally:
        page.server.set_faults()
    assert out["commit"]["files"][0]["fileSize"] == len(data)
    started, finished = out["t0"], out["t1"]
    assert finished - started > 2500
    mid = [t for t in out["refreshTimes"] if started + 1500 < t < finished]
    assert mid, f"no refresh during the upload: {out['refreshTimes']} in [{started}, {finished}]"


def test_zero_and_two_workers_give_identical_hashes(
    page: DemoPage, open_page: Any, tmp_path: Path
) -> None:
    # 40 MiB: several 16 MiB blocks, so slices and block-straddling chunks are exercised
    data = random_bytes(20 * MIB, 11) + float_like(20 * MIB - 777, 12)
    reference = hf_xet.hash_files([str(write_files(tmp_path, {"w.bin": data})["w.bin"])])[0]
    single = open_page(workers=0, sha256Worker=1)  # no pool: hashlib on the page whatever
    results = {}
    for label, p in (("two", page), ("zero", single)):
        p.add_fixture("w.bin", data)
        state = p.evaluate("() => [window.demo.xet.workers, window.demo.xet.sha256Worker]")
        assert state == ([2, True] if label == "two" else [0, False])
        hashed = p.evaluate(HASH_JS, {"name": "w.bin", "options": {}})
        # with sha256: the pool's side worker digests the Blob (2 workers), hashlib (0)
        small_blocks = p.evaluate(HASH_JS, {"name": "w.bin",
                                            "options": {"blockSize": 3 * MIB, "sha256": True}})
        uploaded = upload(p, ["w.bin"], repo=f"test/workers-{label}")["commit"]["files"][0]
        results[label] = (hashed["fileHash"], small_blocks["fileHash"], uploaded["fileHash"])
        assert uploaded["sha256"] == small_blocks["sha256"] == hashlib.sha256(data).hexdigest()
        assert hashed["sha256"] is None
    assert results["two"] == results["zero"] == (reference.hash,) * 3


def test_not_isolated_page_warns_and_falls_back(open_page: Any) -> None:
    page = open_page(strip_isolation=True, workers=2)
    state = page.evaluate(
        "() => [crossOriginIsolated, window.demo.xet.workers, window.demo.xet.crossOriginIsolated]"
    )
    assert state == [False, 0, False]
    assert any("not cross-origin isolated" in line and line.startswith("warning")
               for line in page.console), page.console
    data = random_bytes(2 * MIB, 5)
    page.add_fixture("iso.bin", data)
    hashed = page.evaluate(HASH_JS, {"name": "iso.bin", "options": {"sha256": True}})
    assert hashed["sha256"] == hashlib.sha256(data).hexdigest()


def test_errors_are_typed(page: DemoPage) -> None:
    error = page.evaluate("""async () => {
      const xet = window.demo.xet;
      const s = new xet.XetSession(location.origin, {token: 'not-a-token', exp: 4102444800n});
      try {
        await s.uploadBytes(new Uint8Array(1000), {name: 'x'});
        await s.finalize();
        return null;
      } catch (err) {
        return {isXet: err.constructor.name, name: err.name, status: err.status,
                message: err.message};
      } finally {
        await s.close();
      }
    }""")
    assert error is not None
    assert error["isXet"] == "XetError" and error["name"] == "XetAuthError"
    assert error["status"] == 401


def test_wrong_arguments_are_named(page: DemoPage) -> None:
    """Wrong argument types and a relative endpoint fail at once, saying what was expected
    (not an AttributeError from deep inside, nor an HTTP 405 from the page's own server)."""
    got = page.evaluate("""async () => {
      const xet = window.demo.xet;
      const token = {token: 'x', exp: 4102444800n};
      const out = {};
      const attempt = async (key, fn) => {
        try { await fn(); out[key] = 'resolved'; }
        catch (err) { out[key] = {isXet: err instanceof Error && err.constructor.name,
                                  name: err.name, message: err.message}; }
      };
      await attempt('relative', () => new xet.XetSession('not a url', token));
      await attempt('ftp', () => new xet.XetSession('ftp://127.0.0.1/', token));
      const s = new xet.XetSession(location.origin, token);
      await attempt('fileString', () => s.uploadFile('model.bin'));
      await attempt('fileBytes', () => s.uploadFile(new Uint8Array(4)));
      await attempt('bytesString', () => s.uploadBytes('hello'));
      await attempt('bytesBlob', () => s.uploadBytes(new Blob(['hello'])));
      await attempt('hashNumber', () => xet.hashFile(42));
      await s.close();
      return out;
    }""")
    for key in ("relative", "ftp"):
        assert got[key]["name"] == "ValueError", got[key]
        assert "absolute http(s) URL" in got[key]["message"], got[key]
    expected = {
        "fileString": "uploadFile expects a File or Blob, got a string",
        "fileBytes": "uploadFile expects a File or Blob, got Uint8Array",
        "bytesString": "uploadBytes expects a Uint8Array, another typed array or an "
        "ArrayBuffer, got a string",
        "bytesBlob": "uploadBytes expects a Uint8Array, another typed array or an "
        "ArrayBuffer, got Blob",
        "hashNumber": "hashFile expects a File or Blob, got a number",
    }
    for key, start in expected.items():
        assert got[key]["name"] == "TypeError" and got[key]["message"].startswith(start), got[key]


# Several uploads at once on one session, with the given session blockSize: every file's
# blocks go through the pool's Blob reader (PooledChunkHasher.read_blob) at the same time.
CONCURRENT_JS = """
async ({names, blockSize, repo}) => {
  const s = await window.writeSession(repo, {blockSize});
  const blobs = await Promise.all(names.map((n) => window.fixture(n)));
  const files = await Promise.all(blobs.map((b, i) => s.uploadFile(b, {name: names[i]})));
  await s.finalize();
  await s.close();
  return files;
}
"""


@pytest.mark.parametrize("block_mib", [16, 3, 0.5])
def test_pool_blob_reader_concurrent_uploads(page: DemoPage, tmp_path: Path,
                                              block_mib: float) -> None:
    # Odd sizes: short last blocks (read on the page below 1 MiB), block-straddling chunks,
    # and three files competing for the shared buffer's slots.
    data = {
        f"c{i}-{block_mib}.bin": random_bytes(7 * MIB + 4321 * i, 20 + i)
        + float_like(6 * MIB - 999 * i, 30 + i)
        for i in range(3)
    }
    paths = write_files(tmp_path, data)
    reference = {n: i.hash for n, i in zip(data, hf_xet.hash_files([str(paths[n]) for n in data]),
                                           strict=True)}
    for name, body in data.items():
        page.add_fixture(name, body)
    files = page.evaluate(CONCURRENT_JS, {"names": list(data), "blockSize": int(block_mib * MIB),
                                          "repo": f"test/concurrent-{block_mib}"})
    for f in files:
        assert f["fileHash"] == reference[f["name"]], f["name"]
        assert f["sha256"] == hashlib.sha256(data[f["name"]]).hexdigest()


# The pool's side worker on its own (WorkerPool.sha256_blob): digests of a Blob read in odd
# slice sizes, a job cancelled mid-read that must stop and not disturb the next, an empty
# Blob, a closed pool.
#
# Cancel mid-read, without guessing at timing: the job's message is posted to the worker as
# soon as it is pending (pool._side_pending), and the worker starts a job's first read in the
# same turn as it receives the message, before it can see the cancel message that follows.
# The job reads in 64-byte steps (~150,000 reads for 9 MiB), so it is still reading when the
# cancel arrives. A listener on the worker records every answer: a cancelled job answers
# nothing (a job that ignored the cancel would post its digest before the next job's).
SIDE_SHA_JS = """
async ({name}) => {
  const py = window.demo.xet.pyodide;
  py.globals.set('side_blob', await window.fixture(name));
  py.globals.set('worker_url', new URL('/xet_worker.mjs', location.href).href);
  return py.runPythonAsync(`
import asyncio
from js import Blob
from pyodide.ffi import create_proxy
from xet_pyodide.errors import XetKernelError
from xet_pyodide.io.workers import start_pool

pool = await start_pool(worker_url, 1)
answers = []
listener = create_proxy(lambda event: answers.append(int(event.data.id)))
try:
    cancelled = pool.sha256_blob(side_blob, block_size=64)
    for _ in range(10_000):  # until the job is posted to the (started) side worker
        if pool._side_pending:
            break
        await asyncio.sleep(0)
    (cancelled_id,) = pool._side_pending
    pool._running_side().addEventListener("message", listener)
    cancelled.cancel()
    digests = [(await pool.sha256_blob(side_blob, block_size=size)).hex()
               for size in (16 << 20, 1000, 64)]
    empty = (await pool.sha256_blob(Blob.new())).hex()
    left = len(pool._side_pending)
    late = pool.sha256_blob(side_blob)
    await asyncio.sleep(0)
finally:
    pool.close()
    listener.destroy()
try:
    await late
    closed = "resolved"
except XetKernelError as exc:
    closed = str(exc)
[digests, empty, cancelled.cancelled(), left, closed, cancelled_id, answers]
`).then((r) => r.toJs());
}
"""


def test_side_worker_sha256_of_a_blob(page: DemoPage) -> None:
    data = random_bytes(9 * MIB + 77, 41)
    page.add_fixture("side.bin", data)
    digests, empty, cancelled, left, closed, cancelled_id, answers = page.evaluate(
        SIDE_SHA_JS, {"name": "side.bin"}
    )
    assert digests == [hashlib.sha256(data).hexdigest()] * 3
    assert empty == hashlib.sha256(b"").hexdigest()
    assert cancelled is True and left == 0
    assert closed.startswith("the worker pool was closed")
    # the cancelled job stopped mid-read and answered nothing; the four jobs after it did
    assert cancelled_id not in answers and len(answers) in (4, 5)  # (+ "late", if it ran)


BYOB_JS = """
async ({name, stallMs, rounds}) => {
  const py = window.demo.xet.pyodide;
  py.globals.set('byob_blob', await window.fixture(name));
  py.globals.set('worker_url', new URL('/xet_worker.mjs', location.href).href);
  py.globals.set('stall_ms', stallMs ?? undefined);
  py.globals.set('rounds', rounds);
  return py.runPythonAsync(`
import asyncio
from xet_pyodide.io.workers import start_pool

pool = await start_pool(worker_url, 1, byob_stall_ms=stall_ms)
try:
    digests = set()
    for _ in range(rounds):  # three digests at once on the side worker
        found = await asyncio.gather(*(
            pool.sha256_blob(byob_blob, block_size=size) for size in (16 << 20, 3 << 20, 1 << 20)
        ))
        digests.update(d.hex() for d in found)
finally:
    pool.close()
sorted(digests)
`).then((r) => r.toJs());
}
"""


def test_side_worker_digests_take_turns_and_stall_fallback(page: DemoPage) -> None:
    """Chromium 156 hangs BYOB reads when one worker reads two Blob streams at once, so the
    side worker's concurrent digests (concurrent uploads) must take turns: no read may stall
    (a stall would show as the worker's console warning after 10 s). Then, with
    ``byob_stall_ms=0``, reads are declared stalled and the digests continue from slices:
    the same digests."""
    data = random_bytes(40 * MIB + 5, 51)
    page.add_fixture("byob.bin", data)
    sha = hashlib.sha256(data).hexdigest()

    def stalls() -> list[str]:
        return [line for line in page.console if "stalled" in line]

    before = len(stalls())
    runs = page.evaluate(BYOB_JS, {"name": "byob.bin", "stallMs": None, "rounds": 6}, timeout=600)
    assert runs == [sha]
    assert len(stalls()) == before, stalls()
    runs = page.evaluate(BYOB_JS, {"name": "byob.bin", "stallMs": 0, "rounds": 1}, timeout=300)
    assert runs == [sha]
    assert len(stalls()) > before  # the fallback ran


def test_closed_instance_and_closed_session_fail_instead_of_hanging(page: DemoPage) -> None:
    """After ``xet.close()`` a session made from that instance rejects its uploads (they used
    to wait for workers that were gone, forever), and ``hashFile``/new sessions throw a plain
    XetError (not "Object has already been destroyed"); a session closed while an upload runs
    ends that upload with ``XetAbortedError``."""
    got = page.evaluate("""async () => {
      const m = await import('/xet_pyodide.js');
      const blob = new Blob([new Uint8Array(24 << 20).fill(3)]);
      const token = {token: 'x', exp: 4102444800n};
      const fail = (e) => ({name: e.name, message: e.message});
      const out = {};
      const xet = await m.loadXet({workers: 2});
      const s = new xet.XetSession(location.origin, token);
      xet.close();
      const timeout = new Promise((resolve) => setTimeout(() => resolve('hung'), 20000));
      out.upload = await Promise.race([s.uploadFile(blob).then(() => 'resolved', fail), timeout]);
      for (const [key, call] of [['hash', () => xet.hashFile(blob)],
                                 ['session', () => new xet.XetSession(location.origin, token)]]) {
        try { await call(); out[key] = 'resolved'; } catch (e) { out[key] = fail(e); }
      }
      xet.close();  // again: nothing happens
      const live = new window.demo.xet.XetSession(location.origin, token);
      const upload = live.uploadFile(new Blob([new Uint8Array(96 << 20).fill(5)]));
      await new Promise((resolve) => setTimeout(resolve, 30));
      await live.close();
      out.closedDuringUpload = await upload.then(() => 'resolved', fail);
      return out;
    }""")
    upload = got["upload"]
    assert upload != "hung" and upload != "resolved", got
    assert upload["name"] == "XetKernelError", upload
    assert upload["message"].startswith("the worker pool was closed"), upload
    for key in ("hash", "session"):
        assert got[key] != "resolved", got
        assert got[key]["name"] == "XetError", got[key]
        assert "instance is closed" in got[key]["message"], got[key]
    closed = got["closedDuringUpload"]
    assert closed != "resolved", "the upload outlived its session"
    assert closed["name"] == "XetAbortedError", closed
    assert "its session was closed or aborted" in closed["message"], closed


def test_kernels_compiled_once_and_shared_with_the_pool(page: DemoPage) -> None:
    """The page compiled xet_kernels.wasm when it loaded; a pool started afterwards compiles
    nothing and posts that same WebAssembly.Module to its workers (issue 19)."""
    state = page.evaluate("""async () => {
  const py = window.demo.xet.pyodide;
  py.globals.set('worker_url', new URL('/xet_worker.mjs', location.href).href);
  const compile = WebAssembly.compile, instantiate = WebAssembly.instantiate;
  let compiles = 0;
  WebAssembly.compile = (...a) => { compiles++; return compile(...a); };
  WebAssembly.instantiate = (b, ...a) => {
    if (!(b instanceof WebAssembly.Module)) compiles++;
    return instantiate(b, ...a);
  };
  try {
    const r = await py.runPythonAsync(`
from js import WebAssembly
from xet_pyodide.kernels import _load_pyodide
from xet_pyodide.io.workers import start_pool

page_module = _load_pyodide._module
pool = await start_pool(worker_url, 2)
try:
    shared = pool._module is page_module and await _load_pyodide.compiled_module() is page_module
finally:
    pool.close()
[page_module is not None and WebAssembly.Module.prototype.isPrototypeOf(page_module),
 shared, pool.size]
`);
    return [...r.toJs(), compiles];
  } finally {
    WebAssembly.compile = compile;
    WebAssembly.instantiate = instantiate;
  }
}""")
    assert state == [True, True, 2, 0]


# At most MAX_HELD_BODIES upload bodies are held by workers at once (io/body_worker.py): the
# next one waits for a release, a release gives exactly one slot back (a second release of the
# same body gives none), and a released body cannot be sent.
HELD_JS = """
async () => {
  const py = window.demo.xet.pyodide;
  return py.runPythonAsync(`
import asyncio
from xet_pyodide.io import body_worker as bw
from xet_pyodide.io.transport import Request, TransportError

data = memoryview(bytes(range(256)) * (8 << 10))  # 2 MiB
held = [await bw.WorkerBody.create(data) for _ in range(bw.MAX_HELD_BODIES)]
extra = asyncio.ensure_future(bw.WorkerBody.create(data))
await asyncio.sleep(0.5)
waited = not extra.done()
held[0].release()
held[0].release()  # idempotent: gives no second slot back
late = await asyncio.wait_for(extra, 30)
another = asyncio.ensure_future(bw.WorkerBody.create(data))
await asyncio.sleep(0.5)
waited_again = not another.done()
try:
    await held[0].send(Request("POST", "http://127.0.0.1:1/x", {}, None), 5)
    sent = "sent"
except TransportError as exc:
    sent = str(exc)
for body in held[1:] + [late]:
    body.release()
(await asyncio.wait_for(another, 30)).release()
[bw.MAX_HELD_BODIES, waited, late.size, waited_again, sent]
`).then((r) => r.toJs());
}
"""


def test_at_most_max_held_bodies_are_held(page: DemoPage) -> None:
    limit, waited, size, waited_again, sent = page.evaluate(HELD_JS)
    assert limit == 4
    assert waited is True  # the fifth body waited for a slot
    assert size == 2 * MIB
    assert waited_again is True  # the double release did not give two slots back
    assert "already released" in sent
