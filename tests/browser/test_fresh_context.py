"""Large transfers from a fresh browser context (``browser.new_context()``: no on-disk
profile, like an Incognito window), where Chromium keeps every Blob byte in memory and refuses
more than ~0.5 GiB of them (issue 24; docs/browser.md, "Upload request bodies").

- 1 GiB of random bytes (a file chosen through an ``<input type=file>``: a disk-backed
  ``File``, as a user's) uploads through ``uploadFile`` + ``finalize``, and ``downloadStream``
  gives it back, compared piece by piece with the ``File``. With xorb bodies as page Blobs this
  failed at ~60 % with ``ERR_BLOB_OUT_OF_MEMORY``.
- A 2 GiB file (the same ``File`` twice, so its upload deduplicates) streams back whole with
  ``downloadStream`` (verified by the download itself against the file hash, and compared with
  the source), and ``downloadToBlob`` of it fails at once with ``XetBlobLimitError``.

- Xorb bodies live in workers of their own (io/body_worker.py): a body whose first two sends
  are cut off by the server is resent from its worker, and every such worker is terminated
  once its upload ended (one more is started ahead, idle, for the next body).

The page is a bare page of the test's own (``/_fixtures/fresh.html``) that loads
``/xet_pyodide.js``: not the demo page.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import MIB, requires_browser
from tests.plugins.cas_server import CasServer
from tests.plugins.runtimes import BrowserThread

pytestmark = [pytest.mark.slow, requires_browser]

GIB = 1024 * MIB

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>fresh context</title></head>
<body><input type="file" id="file">
<script>
// Count the workers the page starts and terminates (body workers, the pool's).
window.workerCounts = { created: 0, terminated: 0 };
window.Worker = class extends Worker {
  constructor(url, options) { super(url, options); window.workerCounts.created += 1; }
  terminate() { window.workerCounts.terminated += 1; super.terminate(); }
};
</script>
<script type="module">
import * as m from "/xet_pyodide.js";
window.session = async (repo) => {
  const secret = new URLSearchParams(location.search).get("secret");
  const url = `${location.origin}/api/models/${repo}/xet-write-token/main`;
  const headers = { Authorization: "Bearer " + secret };
  return new window.xet.XetSession(location.origin, await m.fetchToken(url, headers),
                                   new m.TokenEndpointRefresher(url, headers));
};
// Reads `stream` to the end, comparing every piece with the same bytes of `blob`.
window.compareStream = async (stream, blob) => {
  const reader = stream.getReader();
  let pos = 0, pieces = 0, mismatchAt = null;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const want = new Uint8Array(await blob.slice(pos, pos + value.byteLength).arrayBuffer());
    if (mismatchAt === null) {
      if (want.length !== value.length) mismatchAt = pos + Math.min(want.length, value.length);
      else {
        for (let i = 0; i < want.length; i++) {
          if (want[i] !== value[i]) { mismatchAt = pos + i; break; }
        }
      }
    }
    pos += value.byteLength;
    pieces += 1;
  }
  return { streamed: pos, pieces, mismatchAt };
};
window.ready = m.loadXet({ baseUrl: "/", workers: 2 })
  .then((xet) => { window.xet = xet; return true; });
</script></body></html>
"""

UPLOAD_JS = """
async ([repo, twice]) => {
  const file = document.getElementById("file").files[0];
  const blob = twice ? new Blob([file, file]) : file;
  const s = await window.session(repo);
  try {
    const t0 = performance.now();
    const up = await s.uploadFile(blob, { sha256: !twice });
    const { metrics } = await s.finalize();
    const uploadSeconds = (performance.now() - t0) / 1000;
    const t1 = performance.now();
    const back = await window.compareStream(s.downloadStream(up.fileHash, up.fileSize), blob);
    const downloadSeconds = (performance.now() - t1) / 1000;
    let blobError = null;
    const t2 = performance.now();
    try {
      await s.downloadToBlob(up.fileHash, up.fileSize);
    } catch (err) {
      blobError = { name: err.name, message: err.message };
    }
    const blobErrorMs = performance.now() - t2;
    return { up, metrics, uploadSeconds, downloadSeconds, back, blobError, blobErrorMs,
             size: blob.size };
  } finally {
    await s.close();
  }
}
"""


def write_random(path: Path, size: int, seed: int) -> str:
    """``size`` seeded random bytes at ``path``; returns their SHA-256."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    with path.open("wb") as f:
        for start in range(0, size, 64 * MIB):
            block = rng.randbytes(min(64 * MIB, size - start))
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def random_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    path = tmp_path_factory.mktemp("fresh") / "random-1gib.bin"
    sha = write_random(path, GIB, 2424)
    yield path, sha
    path.unlink()


@pytest.fixture(scope="module")
def fresh_page(chromium: BrowserThread, web_cas: CasServer) -> Iterator[Any]:
    """The test page in a new browser context."""
    (web_cas.web_root / "_fixtures" / "fresh.html").write_text(PAGE)  # type: ignore[attr-defined]
    console: list[str] = []

    def open_page(browser: Any) -> tuple[Any, Any]:
        context = browser.new_context()
        page = context.new_page()
        page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
        page.goto(f"{web_cas.url}/_fixtures/fresh.html?secret={web_cas.dev_secret}")
        page.evaluate("() => window.ready")
        return context, page

    context, page = chromium.call(open_page)
    page.console = console
    try:
        yield page
    finally:
        chromium.call(lambda _b: context.close())


def run(chromium: BrowserThread, page: Any, repo: str, twice: bool) -> dict[str, Any]:
    return chromium.call(lambda _b: page.evaluate(UPLOAD_JS, [repo, twice]), timeout=1200)


RETRY_JS = """
async () => {
  const data = new Uint8Array(5 * 1024 * 1024 + 123);
  for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
  const before = { ...window.workerCounts };
  const s = await window.session("test/fresh-retry");
  try {
    const up = await s.uploadBytes(data, { name: "retry.bin" });
    const { metrics } = await s.finalize();
    const back = await s.downloadToBlob(up.fileHash, up.fileSize);
    const got = new Uint8Array(await back.arrayBuffer());
    const same = got.length === data.length && got.every((b, i) => b === data[i]);
    return { metrics, same, before, after: { ...window.workerCounts },
             workers: window.xet.workers };
  } finally {
    await s.close();
  }
}
"""


def test_body_resent_from_its_worker_and_workers_terminated(
    chromium: BrowserThread, fresh_page: Any, web_cas: CasServer
) -> None:
    """The first two sends of the xorb body are cut off half-way (the server reads half the
    body, then drops the connection): the worker resends the same Blob; the upload succeeds
    and every body worker is gone afterwards (only the pool's workers and the idle one started
    ahead remain)."""
    cut = {"abort_rate": 1.0, "max_faults": 2}
    web_cas.set_faults(endpoints={"grant_put": cut, "xorb_upload": cut})
    try:
        before = web_cas.stats().get("faults_injected", 0)
        out = chromium.call(lambda _b: fresh_page.evaluate(RETRY_JS), timeout=300)
        faults = web_cas.stats().get("faults_injected", 0) - before
    finally:
        web_cas.set_faults()
    assert faults == 2
    assert out["same"] is True
    assert out["metrics"]["xorbsUploaded"] == 1 and out["metrics"]["newBytes"] == 5 * MIB + 123
    started = out["after"]["created"] - out["before"]["created"]
    ended = out["after"]["terminated"] - out["before"]["terminated"]
    assert ended == 1, out  # one xorb: one body worker, terminated
    assert started in (1, 2), out  # + the next one started ahead, unless one was already
    live = out["after"]["created"] - out["after"]["terminated"]
    assert live == out["workers"] + 1, out  # the pool's workers and the one started ahead


def test_upload_1_gib_of_random_bytes_and_stream_it_back(
    chromium: BrowserThread, fresh_page: Any, random_file: tuple[Path, str]
) -> None:
    chromium.call(lambda _b: fresh_page.set_input_files("#file", str(random_file[0])))
    out = run(chromium, fresh_page, "test/fresh-1gib", False)
    assert out["size"] == GIB
    assert out["up"]["fileSize"] == GIB
    assert out["up"]["sha256"] == random_file[1]
    assert out["metrics"]["newBytes"] == GIB  # all of it new: 16 xorbs went up
    assert out["metrics"]["xorbBytesUploaded"] >= GIB
    back = out["back"]
    assert (back["streamed"], back["mismatchAt"]) == (GIB, None)
    assert back["pieces"] >= GIB // (8 * MIB)  # pieces of at most 8 MiB
    assert not [line for line in fresh_page.console if "ERR_BLOB" in line], fresh_page.console
    assert out["blobError"]["name"] == "XetBlobLimitError"


def test_2_gib_download_stream_and_download_to_blob_refused(
    chromium: BrowserThread, fresh_page: Any, random_file: tuple[Path, str]
) -> None:
    chromium.call(lambda _b: fresh_page.set_input_files("#file", str(random_file[0])))
    out = run(chromium, fresh_page, "test/fresh-2gib", True)
    size = 2 * GIB
    assert out["up"]["fileSize"] == size
    back = out["back"]
    assert (back["streamed"], back["mismatchAt"]) == (size, None)
    assert back["pieces"] >= size // (8 * MIB)
    error = out["blobError"]
    assert error["name"] == "XetBlobLimitError", error
    assert "downloadStream" in error["message"] and "2048 MiB" in error["message"], error
    assert out["blobErrorMs"] < 1000  # refused before downloading anything
