"""Downloads through the JavaScript API with 0, 1 and 2 pool workers (Chromium): with workers,
xorb bodies are read by the workers (``xet_pyodide/io/pool_fetch.py``); the bytes must be the
same as without, for whole files, ranges and streams, and the worker path must survive the
server's faults (503s, a dropped body, a corrupted body, expired URLs) like the page's own (a
corrupted raw chunk decodes fine and is caught by the file hash: XetIntegrityError)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.browser.conftest import requires_browser
from tests.plugins.download_corpus import Corpus
from tests.plugins.runtimes import evaluate_steps

pytestmark = requires_browser

# Runs in the page: one front door per call (cfg.workers), no chunk cache, digests only.
PAGE_SCRIPT = """
async (cfg) => {
  const m = await import("/xet_pyodide.js");
  const xet = await m.loadXet({ workers: cfg.workers });
  const hex = async (buf) => Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", buf)))
      .map((b) => b.toString(16).padStart(2, "0")).join("");
  const out = { workers: xet.workers, files: [] };
  // Count the xorb GETs whose bodies the workers read (pool_fetch's transport): an observer,
  // the requests still go through the real transport.
  xet.pyodide.runPython(`
import xet_pyodide.io.pool_fetch as pool_fetch
_stream = pool_fetch.WorkerStreamTransport._stream
async def _counted(self, request):
    pool_fetch.worker_reads += 1
    return await _stream(self, request)
pool_fetch.worker_reads = 0
pool_fetch.WorkerStreamTransport._stream = _counted
# the workers' heads: how each body is read (byob) and how many BYOB bodies its worker had open
_deliver = pool_fetch.WorkerStream.deliver
def _observed(self, data):
    if getattr(data, "status", None) is not None:
        pool_fetch.heads.append((bool(data.byob), int(data.byobBodies)))
    return _deliver(self, data)
pool_fetch.heads = []
pool_fetch.WorkerStream.deliver = _observed
`);
  const session = new xet.XetSession(cfg.endpoint, new m.TokenInfo(cfg.token, cfg.exp), null,
                                     { chunkCache: "none" });
  try {
    for (const f of cfg.files) {
      let blob;
      try {
        blob = await session.downloadToBlob(f.hash, f.size);
      } catch (err) {
        out.files.push({ error: err.name });
        continue;
      }
      const r = { full: await hex(await blob.arrayBuffer()), ranges: [] };
      for (const [start, end] of f.ranges ?? []) {
        const part = await session.downloadToBlob(f.hash, f.size, { range: { start, end } });
        r.ranges.push(await hex(await part.arrayBuffer()));
      }
      if (f.stream) {
        const parts = [];
        const reader = session.downloadStream(f.hash, f.size, { blockSize: 1 << 20 }).getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          parts.push(value);
        }
        r.stream = await hex(await new Blob(parts).arrayBuffer());
      }
      out.files.push(r);
    }
  } finally {
    await session.close();
    const reads = "import xet_pyodide.io.pool_fetch as f; f.worker_reads";
    out.workerReads = xet.pyodide.runPython(reads);
    out.heads = xet.pyodide.runPython(
      "import json, xet_pyodide.io.pool_fetch as f; json.dumps(f.heads)");
    xet.close();
  }
  return out;
}
"""

RANGES = {"random": [[1, 1_000_000]], "floats": [[4, 1_234_567]], "dedup": [[1_599_990, 2_000_011]]}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check(corpus: Corpus, names: list[str], result: dict[str, Any], corrupt: bool = False) -> None:
    for name, got in zip(names, result["files"], strict=True):
        if corrupt and got.get("error") == "XetIntegrityError":
            continue  # a flipped byte in a raw chunk: caught by the file hash, as it must be
        data = corpus.data[name]
        assert got["full"] == sha(data), name
        for (start, end), digest in zip(RANGES.get(name, []), got["ranges"], strict=True):
            assert digest == sha(data[start:end]), (name, start, end)
        if "stream" in got:
            assert got["stream"] == sha(data), name


def test_js_download_same_bytes_with_0_1_2_workers_and_faults(
    chromium: Any, static_server: Any, corpus: Corpus
) -> None:
    server = corpus.server
    token, exp = corpus.read_token()
    names = ["text", "random", "floats", "dedup"]
    files = [corpus.item(n, ranges=RANGES.get(n, []), stream=n == "dedup") for n in names]
    base = {"endpoint": server.url, "token": token, "exp": exp, "files": files}

    def faults(**endpoints: Any) -> Any:
        return lambda: server.set_faults(endpoints=endpoints)

    fault_runs = [
        faults(xorb_fetch={"error_rate": 1.0, "status": 503, "max_faults": 2}),
        faults(xorb_fetch={"drop_rate": 1.0, "max_faults": 1}),
        faults(xorb_fetch={"corrupt_rate": 1.0, "max_faults": 1}),
        faults(reconstruction_v2={"expire_rate": 1.0, "max_faults": 1}),
    ]
    configs = [{**base, "workers": n} for n in (0, 1, 2)]
    configs += [{**base, "workers": 2, "files": files[1:3], "before": f} for f in fault_runs]
    try:
        results = evaluate_steps(
            chromium, f"{static_server.url}/harness.html", PAGE_SCRIPT, configs
        )
    finally:
        server.set_faults()
    assert [r["workers"] for r in results[:3]] == [0, 1, 2]
    # without workers the page reads every body; with them, the workers do (one xorb GET at
    # least per file, range and stream)
    reads = [r["workerReads"] for r in results[:3]]
    assert reads[0] == 0 and min(reads[1:]) >= 4 + sum(len(f["ranges"]) for f in files) + 1, reads
    # every body a worker reads goes through a BYOB reader (recycled buffers), also when one
    # worker reads several at once (Blob streams may not: docs/browser.md, "Blob reads")
    for result in results[1:3]:
        heads = json.loads(result["heads"])
        assert len(heads) == result["workerReads"], heads
        assert all(byob for byob, _ in heads), heads
    # with one worker, ranges fetched in parallel overlap in it (the multi-xorb files)
    assert max(n for _, n in json.loads(results[1]["heads"])) >= 2, results[1]["heads"]
    for result in results[:3]:
        check(corpus, names, result)
    for i, result in enumerate(results[3:]):
        check(corpus, names[1:3], result, corrupt=i == 2)
