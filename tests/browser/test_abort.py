"""AbortSignal support of the JavaScript API (``signal`` option) in headless Chromium, against
the real local CAS server: an aborted upload rejects like ``fetch`` does (with the signal's
reason) and is left out of ``finalize()``, whose other files hf_xet then downloads; an aborted
``hashFile`` rejects the same way; aborted or cancelled downloads stop, and the session's next
downloads return the right bytes; ``finalize`` aborted during its xorb uploads registers
nothing, and ignores an abort once its shard upload started."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import MIB, DemoPage, random_bytes, requires_browser

pytestmark = requires_browser

ABORT_JS = """
async () => {
  const xet = window.demo.xet;
  const s = await window.writeSession('test/abort');
  const hex = window.sha256Hex;
  const failure = (err) => ({name: err.name, message: err.message,
                             isDomException: err instanceof DOMException});
  const big = await window.fixture('big.bin');
  const small = await window.fixture('small.bin');
  const out = {};
  try {
    // 1. an upload aborted mid-file (from its first progress event with bytes processed)
    const ac = new AbortController();
    let processed = 0, abandonedEvent = false;
    const aborting = await window.fixture('aborted.bin');
    try {
      await s.uploadFile(aborting, {signal: ac.signal, onProgress: (e) => {
        if (e.fileAbandoned) abandonedEvent = true;
        if (e.fileBytesProcessed > 0 && !ac.signal.aborted) {
          processed = e.fileBytesProcessed;
          ac.abort();
        }
      }});
      out.aborted = 'resolved';
    } catch (err) {
      out.aborted = {...failure(err), processed, abandonedEvent};
    }
    // 2. a signal aborted beforehand, with a reason of its own: rejected with that reason
    try {
      await s.uploadBytes(new Uint8Array(100), {signal: AbortSignal.abort(new Error('not now'))});
      out.preAborted = 'resolved';
    } catch (err) {
      out.preAborted = failure(err);
    }
    // 2b. xet.hashFile, aborted while it reads (160 MiB with SHA-256: hundreds of ms);
    //     then a complete call
    const hc = new AbortController();
    const hashing = xet.hashFile(new Blob([big, big, big, big]), {signal: hc.signal, sha256: true});
    setTimeout(() => hc.abort(), 30);
    try {
      await hashing;
      out.hashAborted = 'resolved';
    } catch (err) {
      out.hashAborted = failure(err);
    }
    out.hashAfter = await xet.hashFile(big, {sha256: true});
    // 3. the session goes on: finalize() registers the file uploaded after the abort only
    const kept = await s.uploadFile(small, {signal: new AbortController().signal});
    const commit = await s.finalize();
    out.kept = kept;
    out.commitFiles = commit.files.map((f) => f.fileHash);
    const whole = await s.uploadFile(big);
    await s.finalize();
    out.big = whole;

    // 4. downloadToBlob aborted once bytes arrived; then the same download, complete
    const dl = new AbortController();
    try {
      await s.downloadToBlob(whole.fileHash, whole.fileSize, {signal: dl.signal,
        onProgress: (e) => { if (e.bytesDone > 0) dl.abort(); }});
      out.blobAborted = 'resolved';
    } catch (err) {
      out.blobAborted = failure(err);
    }
    const again = await s.downloadToBlob(whole.fileHash, whole.fileSize);
    out.blobAfter = await hex(await again.arrayBuffer());

    // 5. downloadStream aborted after its first piece: the next read rejects
    const st = new AbortController();
    const reader = s.downloadStream(whole.fileHash, whole.fileSize,
                                    {signal: st.signal, blockSize: 1 << 20}).getReader();
    const first = await reader.read();
    st.abort();
    try {
      await reader.read();
      out.streamAborted = 'resolved';
    } catch (err) {
      out.streamAborted = {...failure(err), firstPiece: first.value.byteLength};
    }

    // 6. a consumer cancel while a read is pending (pieces larger than the download's own,
    //    so that every read waits for the download): that read ends the stream
    const r2 = s.downloadStream(whole.fileHash, whole.fileSize, {blockSize: 64 << 20}).getReader();
    await r2.read();
    const pending = r2.read();
    await r2.cancel();
    const after = await pending;
    out.cancelled = {done: after.done};

    // 7. and a complete stream still returns the file
    const r3 = s.downloadStream(whole.fileHash, whole.fileSize).getReader();
    const parts = [];
    for (;;) {
      const {done, value} = await r3.read();
      if (done) break;
      parts.push(value);
    }
    out.streamAfter = await hex(await new Blob(parts).arrayBuffer());

    // 8. finalize() aborted while its xorbs upload: rejected, nothing registered
    const mid = await window.fixture('mid.bin');
    const dropped = await s.uploadFile(mid);
    const fc = new AbortController();
    try {
      await s.finalize({signal: fc.signal, onProgress: (e) => {
        if (e.phase === 'uploading_xorbs') fc.abort();
      }});
      out.finalizeAborted = 'resolved';
    } catch (err) {
      out.finalizeAborted = failure(err);
    }
    try {
      await s.downloadToBlob(dropped.fileHash, dropped.fileSize);
      out.droppedDownload = 'resolved';
    } catch (err) {
      out.droppedDownload = err.name;
    }
    // 9. an abort once the shard is on its way is ignored: finalize() resolves, registered
    const reup = await s.uploadFile(mid);
    const lc = new AbortController();
    const late = await s.finalize({signal: lc.signal, onProgress: (e) => {
      if (e.phase === 'uploading_shard') lc.abort();
    }});
    out.lateAbort = {aborted: lc.signal.aborted, files: late.files.map((f) => f.fileHash),
                     hash: reup.fileHash, newBytes: late.metrics.newBytes};
    out.lateBlob = await hex(await (await s.downloadToBlob(reup.fileHash, reup.fileSize))
        .arrayBuffer());
  } finally {
    await s.close();
  }
  return out;
}
"""


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return {
        "big.bin": random_bytes(40 * MIB + 777, 41),
        # Progress events are >= 100 ms apart and the first comes before any chunk is done:
        # with the SHA-256 off the page (the pool's chain), the page chunks 40 MiB within
        # those 100 ms at times, so the mid-file abort uses a file three times as long.
        "aborted.bin": random_bytes(120 * MIB + 777, 44),
        "small.bin": random_bytes(MIB + 5, 42),
        "mid.bin": random_bytes(6 * MIB + 3, 43),
    }


@pytest.fixture(scope="module")
def page(open_page: Any, files: dict[str, bytes]) -> DemoPage:
    page = open_page(workers=2)
    for name, data in files.items():
        page.add_fixture(name, data)
    return page


def test_abort_signals(page: DemoPage, files: dict[str, bytes], tmp_path: Path) -> None:
    out = page.evaluate(ABORT_JS)
    big, small = files["big.bin"], files["small.bin"]
    aborted = out["aborted"]
    assert aborted != "resolved", "the aborted upload resolved"
    assert aborted["name"] == "AbortError" and aborted["isDomException"], aborted
    assert 0 < aborted["processed"] < len(files["aborted.bin"])  # aborted mid-file
    assert aborted["abandonedEvent"]  # its listener heard that the file was abandoned
    assert out["preAborted"]["message"] == "not now"
    # finalize() went on without the aborted file
    assert out["commitFiles"] == [out["kept"]["fileHash"]]
    path = tmp_path / "small.bin"
    page.server.hf_download(
        [{"hash": out["kept"]["fileHash"], "size": len(small), "dest": path}],
        hf_home=tmp_path / "hf-home",
        repo="models/test/abort",  # the repository writeSession('test/abort') wrote to
    )
    assert path.read_bytes() == small

    hashed = out["hashAborted"]
    assert hashed != "resolved" and hashed["name"] == "AbortError", hashed
    assert out["hashAfter"]["fileHash"] == out["big"]["fileHash"]
    assert out["hashAfter"]["sha256"] == hashlib.sha256(big).hexdigest()
    assert out["blobAborted"] != "resolved" and out["blobAborted"]["name"] == "AbortError"
    digest = hashlib.sha256(big).hexdigest()
    assert out["big"]["fileSize"] == len(big)
    assert out["blobAfter"] == digest
    stream = out["streamAborted"]
    assert stream != "resolved" and stream["name"] == "AbortError"
    assert stream["firstPiece"] == MIB
    assert out["cancelled"] == {"done": True}
    assert out["streamAfter"] == digest
    # finalize(): an abort during the xorb uploads drops the commit; one during the shard
    # upload is ignored
    assert out["finalizeAborted"] != "resolved", "the aborted finalize() resolved"
    assert out["finalizeAborted"]["name"] == "AbortError", out["finalizeAborted"]
    assert out["droppedDownload"] == "XetNotFoundError"
    late = out["lateAbort"]
    assert late["aborted"] and late["files"] == [late["hash"]]
    assert late["newBytes"] == len(files["mid.bin"])  # the dropped commit's chunks: sent again
    assert out["lateBlob"] == hashlib.sha256(files["mid.bin"]).hexdigest()
    assert not [line for line in page.console if "never retrieved" in line]
