"""The JavaScript download API in Chromium (``web/xet_pyodide.js``): ``downloadToBlob`` (whole
file and ``range``, end exclusive), ``downloadStream`` (a ``ReadableStream``), progress events,
and the chunk cache on the Cache API surviving a page reload (measured with the CAS server's
request counters: the download after the reload fetches no xorb bytes)."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.browser.conftest import requires_browser
from tests.plugins.download_corpus import Corpus
from tests.plugins.runtimes import evaluate_steps

pytestmark = requires_browser

# Runs in the page: load the front door, download as the test asks, return digests only.
PAGE_SCRIPT = """
async (cfg) => {
  const m = await import("/xet_pyodide.js");
  const xet = await m.loadXet({ workers: 2 });
  const hex = async (buf) => Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", buf)))
      .map((b) => b.toString(16).padStart(2, "0")).join("");
  const out = { workers: xet.workers, files: [] };
  if (cfg.clearCache) await caches.delete("xet-chunks");
  const session = new xet.XetSession(cfg.endpoint, new m.TokenInfo(cfg.token, cfg.exp));
  try {
    for (const f of cfg.files) {
      const phases = [];
      const blob = await session.downloadToBlob(f.hash, f.size, {
        onProgress: (e) => { if (phases.at(-1) !== e.phase) phases.push(e.phase); },
      });
      const digest = await hex(await blob.arrayBuffer());
      const r = { size: blob.size, sha256: digest, phases, ranges: [] };
      for (const [start, end] of f.ranges ?? []) {
        const part = await session.downloadToBlob(f.hash, f.size, { range: { start, end } });
        r.ranges.push([part.size, await hex(await part.arrayBuffer())]);
      }
      if (f.stream) {
        const reader = session.downloadStream(f.hash, f.size, { blockSize: 1 << 20 }).getReader();
        const parts = [];
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          parts.push(value);
        }
        const all = await new Blob(parts).arrayBuffer();
        const largest = Math.max(...parts.map((p) => p.byteLength));
        r.stream = { pieces: parts.length, largest, size: all.byteLength, sha256: await hex(all) };
      }
      out.files.push(r);
    }
    try {
      await session.downloadToBlob("ab".repeat(32), 10);
      out.missing = null;
    } catch (err) {
      out.missing = { name: err.name, isXetError: err instanceof m.XetError };
    }
  } finally {
    await session.close();
    xet.close();
  }
  return out;
}
"""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_js_download_api_and_cache_after_reload(
    chromium: Any,
    static_server: Any,
    corpus: Corpus,
) -> None:
    server = corpus.server
    token, exp = corpus.read_token()
    ranges = {"text": [[0, 1], [100, 65_637], [69_000, 70_000]], "dedup": [[1_599_990, 2_000_011]]}
    files = [
        corpus.item("text", ranges=ranges["text"]),
        corpus.item("dedup", ranges=ranges["dedup"], stream=True),
        corpus.item("empty"),
    ]
    base = {"endpoint": server.url, "token": token, "exp": exp, "files": files}
    seen: dict[str, Any] = {}

    def after_first() -> None:
        seen["first"] = server.stats()
        server.reset_stats()

    server.reset_stats()
    first, second = evaluate_steps(
        chromium,
        f"{static_server.url}/harness.html",
        PAGE_SCRIPT,
        [{**base, "clearCache": True}, {**base, "before": after_first}],
        reload=True,
    )
    for result in (first, second):
        assert result["missing"] == {"name": "XetNotFoundError", "isXetError": True}
        for name, got in zip(["text", "dedup", "empty"], result["files"], strict=True):
            data = corpus.data[name]
            assert (got["size"], got["sha256"]) == (len(data), sha(data)), name
            for (start, end), (size, digest) in zip(
                ranges.get(name, []), got["ranges"], strict=True
            ):
                assert (size, digest) == (len(data[start:end]), sha(data[start:end])), (name, start)
    assert first["files"][1]["phases"] == ["downloading", "verifying", "done"]
    stream = first["files"][1]["stream"]
    assert (stream["size"], stream["sha256"]) == (
        len(corpus.data["dedup"]),
        sha(corpus.data["dedup"]),
    )
    assert stream["pieces"] >= 4 and stream["largest"] == 1 << 20  # blockSize 1 MiB
    assert seen["first"]["xorb_bytes_served"] > 0
    # After the reload: everything came from the Cache API, not one xorb GET.
    after = server.stats()
    assert after["requests"].get("xorb_fetch", 0) == 0 and after["xorb_bytes_served"] == 0
    assert after["requests"]["reconstruction_v2"] > 0
