"""Which browser store for upload resume journals: IndexedDB or the Origin Private File System.

    python bench/resume_store.py [--appends 200] [--frame-kb 36] [--repeat 3]

In headless Chromium (a page of the local CAS server, ``web/`` served), for each store:
``--appends`` appends of one frame (36 KiB: one 64 MiB xorb of ~1000 chunks), each made
durable before the next, then one read of the whole journal and one atomic rewrite of it.

* IndexedDB: ``web/xet_resume.mjs`` (one ``add`` per append, ``durability: "strict"``);
* OPFS, main thread (the page's Python runs there): ``createWritable({keepExistingData:
  true})`` + ``seek(end)`` + ``write`` + ``close`` per append — the only atomic OPFS write a
  page has (``close`` swaps in a copy of the file, so each append copies the whole journal);
  read: ``getFile().arrayBuffer()``; rewrite: ``createWritable()`` + ``write`` + ``close``.

Prints JSON: per store the median and min/max of milliseconds per append, for the read and for
the rewrite, with the load average. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "cas_server")]

from xet_cas_server.launcher import ServerProcess  # noqa: E402

from tests.plugins.runtimes import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

MEASURE_JS = """
async ([appends, frameKb]) => {
  const { IndexedDbResumeStore } = await import('/xet_resume.mjs');
  const frame = new Uint8Array(frameKb * 1024);
  crypto.getRandomValues(frame.subarray(0, 65536));
  const out = {};
  // IndexedDB
  const idb = new IndexedDbResumeStore('bench_resume_' + Math.random());
  let t = performance.now();
  for (let i = 0; i < appends; i++) await idb.append('j', frame);
  out.idb_append_ms = (performance.now() - t) / appends;
  t = performance.now();
  const got = await idb.read('j');
  out.idb_read_ms = performance.now() - t;
  t = performance.now();
  await idb.replace('j', got);
  out.idb_rewrite_ms = performance.now() - t;
  out.idb_bytes = got.byteLength;
  // OPFS (main thread: async API only)
  const root = await navigator.storage.getDirectory();
  const name = 'bench_' + Math.random();
  const handle = await root.getFileHandle(name, { create: true });
  let size = 0;
  t = performance.now();
  for (let i = 0; i < appends; i++) {
    const w = await handle.createWritable({ keepExistingData: true });
    await w.seek(size);
    await w.write(frame);
    await w.close();
    size += frame.byteLength;
  }
  out.opfs_append_ms = (performance.now() - t) / appends;
  t = performance.now();
  const buf = new Uint8Array(await (await handle.getFile()).arrayBuffer());
  out.opfs_read_ms = performance.now() - t;
  t = performance.now();
  const w = await handle.createWritable();
  await w.write(buf);
  await w.close();
  out.opfs_rewrite_ms = performance.now() - t;
  out.opfs_bytes = buf.byteLength;
  await root.removeEntry(name);
  return out;
}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appends", type=int, default=200)
    parser.add_argument("--frame-kb", type=int, default=36)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data", web=REPO / "web").start()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
                )
                for _ in range(args.repeat):
                    context = browser.new_context()
                    page = context.new_page()
                    page.goto(f"{server.url}/harness.html")
                    runs.append(page.evaluate(MEASURE_JS, [args.appends, args.frame_kb]))
                    context.close()
                browser.close()
        finally:
            server.close()
    keys = [k for k in runs[0] if k.endswith("_ms")]
    summary = {
        k: {
            "median": statistics.median(r[k] for r in runs),
            "min": min(r[k] for r in runs),
            "max": max(r[k] for r in runs),
        }
        for k in keys
    }
    print(
        json.dumps(
            {
                "appends": args.appends,
                "frame_kb": args.frame_kb,
                "repeat": args.repeat,
                "journal_bytes": runs[0]["idb_bytes"],
                "loadavg": os.getloadavg(),
                "ms": summary,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
