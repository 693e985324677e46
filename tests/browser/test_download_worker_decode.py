"""``downloadToBlob`` with worker-read bodies and no chunk cache (Chromium): the pool worker
that reads a xorb range's body decodes and hashes it into a Blob (``op fetch`` with ``decode``
of ``web/xet_worker.mjs``, ``RangeFetcher._worker_attempt``), and the page only references
the workers' Blobs. Checked: the worker path really ran (``DownloadStats.worker_decoded``,
the workers' heads), the bytes of whole files with LZ4 (text), raw (random) and BG4 (floats)
records and of ranges with partial first and last chunks (one xorb and across two), the file
hash verified; a body that never decodes is fetched 3 times, then ``XetIntegrityError`` and
no Blob; one corrupted body is fetched again and the bytes are right; an abort mid-body
rejects with the signal's reason and leaves no stream behind; streams keep the page's own
decoding (no worker decoding)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.browser.conftest import requires_browser
from tests.plugins.download_corpus import Corpus
from tests.plugins.runtimes import evaluate_steps

pytestmark = requires_browser

PAGE_SCRIPT = """
async (cfg) => {
  const m = await import("/xet_pyodide.js");
  const xet = await m.loadXet({ workers: 2 });
  const hex = async (buf) => Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", buf)))
      .map((b) => b.toString(16).padStart(2, "0")).join("");
  // Every download's DownloadStats, and the workers' heads (decoding or not).
  xet.pyodide.runPython(`
import json
import xet_pyodide.io.pool_fetch as pool_fetch
import xet_pyodide.session.download as download
_start = download.DownloadMixin._start
async def _recorded(self, *args, **kwargs):
    job, stats, reporter = await _start(self, *args, **kwargs)
    download.all_stats.append(stats)
    return job, stats, reporter
download.all_stats = []
download.DownloadMixin._start = _recorded
_deliver = pool_fetch.WorkerStream.deliver
def _observed(self, data):
    if getattr(data, "status", None) is not None:
        pool_fetch.heads.append(bool(data.decoding))
    return _deliver(self, data)
pool_fetch.heads = []
pool_fetch.WorkerStream.deliver = _observed
_init = pool_fetch.WorkerStreamTransport.__init__
def _kept(self, pool, *args, **kwargs):
    pool_fetch.pools.append(pool)
    _init(self, pool, *args, **kwargs)
pool_fetch.pools = []
pool_fetch.WorkerStreamTransport.__init__ = _kept
`);
  const stats = () => JSON.parse(xet.pyodide.runPython(
      "json.dumps(download.all_stats[-1].to_dict())"));
  const session = new xet.XetSession(cfg.endpoint, new m.TokenInfo(cfg.token, cfg.exp), null,
                                     { chunkCache: "none" });
  const out = { workers: xet.workers, results: [] };
  try {
    for (const job of cfg.jobs) {
      const r = { name: job.name, range: job.range ?? null };
      try {
        if (job.stream) {
          const parts = [];
          const reader = session.downloadStream(job.hash, job.size).getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            parts.push(value);
          }
          r.sha = await hex(await new Blob(parts).arrayBuffer());
        } else {
          const options = {};
          if (job.range) options.range = { start: job.range[0], end: job.range[1] };
          if (job.abort) {
            const ac = new AbortController();
            options.signal = ac.signal;
            options.onProgress = (e) => { if (e.bytesFetched > 0) ac.abort(new Error("stop")); };
          }
          const blob = await session.downloadToBlob(job.hash, job.size, options);
          r.size = blob.size;
          r.sha = await hex(await blob.arrayBuffer());
        }
      } catch (err) {
        r.error = err.name;
        r.message = String(err.message);
      }
      r.stats = stats();
      // bodies still registered with the pool (none once a download has ended)
      r.openStreams = xet.pyodide.runPython("sum(len(p.streams) for p in pool_fetch.pools)");
      out.results.push(r);
    }
  } finally {
    await session.close();
    out.heads = JSON.parse(xet.pyodide.runPython("json.dumps(pool_fetch.heads)"));
    xet.close();
  }
  return out;
}
"""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_to_blob_decodes_in_the_workers(
    chromium: Any, static_server: Any, corpus: Corpus
) -> None:
    server = corpus.server
    token, exp = corpus.read_token()
    base = {"endpoint": server.url, "token": token, "exp": exp}

    def job(name: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, **corpus.item(name), **extra}

    big = corpus.data["big"]
    whole = [job(n) for n in ("text", "random", "floats", "dedup", "big")]
    ranges = [
        job("text", range=[1, 69_999]),
        job("floats", range=[4, 1_234_567]),
        job("big", range=[1_000_001, len(big) - 999]),  # two xorbs, partial chunks at both ends
        job("big", range=[67_000_003, 67_100_005]),  # one chunk or two, in the second xorb
    ]

    def faults(**endpoints: Any) -> Any:
        return lambda: server.set_faults(endpoints=endpoints)

    steps = [
        {**base, "jobs": whole + ranges + [job("floats", stream=True)]},
        {**base, "jobs": [job("text")], "before": faults(xorb_fetch={"corrupt_rate": 1.0})},
        {
            **base,
            "jobs": [job("text")],
            "before": faults(xorb_fetch={"corrupt_rate": 1.0, "max_faults": 1}),
        },
        {**base, "jobs": [job("big", abort=True), job("big")], "before": faults()},
    ]
    try:
        results = evaluate_steps(chromium, f"{static_server.url}/harness.html", PAGE_SCRIPT, steps)
    finally:
        server.set_faults()

    plain, bad, once, aborted = results
    assert plain["workers"] == 2
    for r in plain["results"]:
        data = corpus.data[r["name"]]
        if r["range"] is not None:
            start, end = r["range"]
            data = data[start:end]
        assert r.get("error") is None, r
        assert r["sha"] == sha(data), (r["name"], r["range"])
        st = r["stats"]
        if r["range"] is None and "size" in r:  # whole files into a Blob: verified, in workers
            assert r["size"] == len(data)
            assert st["verified"] == "file", r
            assert st["worker_decoded"] == st["ranges"] >= 1, st
            assert st["refetches"] == 0
        elif r["range"] is not None:
            assert r["size"] == len(data)
            assert st["worker_decoded"] == st["ranges"] >= 1, st
        else:  # the stream: decoded on the page as before
            assert st["worker_decoded"] == 0, st
    big_range = plain["results"][len(whole) + 2]["stats"]
    assert big_range["ranges"] == 2 and big_range["worker_decoded"] == 2, big_range
    # the workers decoded every body of the Blob downloads, none of the stream's
    heads = plain["heads"]
    stream_ranges = plain["results"][-1]["stats"]["ranges"]
    assert heads.count(False) == stream_ranges, heads
    assert heads.count(True) == sum(r["stats"]["worker_decoded"] for r in plain["results"])

    # every body corrupted: fetched MAX_DECODE_ATTEMPTS (3) times, then XetIntegrityError
    (r,) = bad["results"]
    assert r["error"] == "XetIntegrityError", r
    assert "did not decode 3 times in a row" in r["message"], r["message"]
    assert "size" not in r  # no Blob
    assert r["stats"]["refetches"] == 2 and r["stats"]["fetch_requests"] == 3, r["stats"]
    assert r["stats"]["worker_decoded"] == 0
    assert bad["heads"] == [True, True, True]

    # one corrupted body: fetched again, right bytes
    (r,) = once["results"]
    assert r.get("error") is None, r
    assert r["sha"] == sha(corpus.data["text"])
    assert r["stats"]["refetches"] == 1 and r["stats"]["worker_decoded"] == 1, r["stats"]
    assert r["stats"]["verified"] == "file"

    # aborted once bytes arrived: rejected with the reason, nothing left; then the same file
    stopped, again = aborted["results"]
    assert stopped["error"] == "Error" and stopped["message"] == "stop", stopped
    assert "size" not in stopped
    assert stopped["openStreams"] == 0 and again["openStreams"] == 0
    assert all(r["openStreams"] == 0 for r in plain["results"])
    assert again.get("error") is None and again["sha"] == sha(big), again
    assert again["stats"]["worker_decoded"] == again["stats"]["ranges"] == 2
    assert json.dumps(aborted["heads"]).count("true") >= 3
