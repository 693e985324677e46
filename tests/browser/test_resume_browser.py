"""Upload resume in Chromium (issue 23): a page uploading a 512 MiB ``File`` is closed — the
whole browser context, a persistent profile — once ≥ 60 % of the file's bytes are in xorbs the
resume journal (IndexedDB, ``web/xet_resume.mjs``) records as acknowledged; a new page in the
same profile uploads the same file and sends at most 40 % of it plus one xorb. The file hash
equals hf_xet's, our verified download and hf_xet's download are byte-identical."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import FIXTURE_JS, MIB, requires_browser
from tests.plugins.runtimes import CHROMIUM, CHROMIUM_ARGS
from xet_pyodide import XetSession
from xet_pyodide.session.resume import journal_name

pytestmark = [pytest.mark.slow, requires_browser]

SIZE = 512 * MIB
REPO_NAME = "test/resume"

START_JS = """
async () => {
  const file = await window.fixture('resume.bin');
  const s = await window.writeSession('@REPO@');
  window.__progress = null;
  window.__error = null;
  window.__run = (async () => {
    await s.uploadFile(file, { onProgress: (e) => { window.__progress = e; } });
    await s.finalize();
  })().catch((e) => { window.__error = String(e); });
  return file.size;
}
""".replace("@REPO@", REPO_NAME)

# Bytes of chunks in the xorbs the IndexedDB journal records (frame layout: resume.py).
ACKNOWLEDGED_JS = """
async (name) => {
  const { IndexedDbResumeStore } = await import('/xet_resume.mjs');
  const data = await new IndexedDbResumeStore().read(name);
  if (data === null) return {bytes: 0, error: window.__error};
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let pos = 0, bytes = 0;
  while (pos + 8 <= data.byteLength) {
    const len = view.getUint32(pos, true);
    if (pos + 8 + len > data.byteLength) break;
    const p = pos + 8;
    if (data[p] === 0x58) {  // 'X': kind, f64 time, 32-byte hash, u32 n, n hashes, n sizes
      const n = view.getUint32(p + 41, true);
      for (let i = 0; i < n; i++) bytes += view.getUint32(p + 45 + 32 * n + 4 * i, true);
    }
    pos = p + len;
  }
  return {bytes, error: window.__error};
}
"""

RESUME_JS = """
async () => {
  const file = await window.fixture('resume.bin');
  const s = await window.writeSession('@REPO@');
  let last = null;
  try {
    const up = await s.uploadFile(file, { onProgress: (e) => { last = e; } });
    const commit = await s.finalize();
    return { up, metrics: commit.metrics, lastBytesResumed: last.bytesResumed };
  } finally {
    await s.close();
  }
}
""".replace("@REPO@", REPO_NAME)


def _open(chromium: Any, profile: Path, url: str) -> tuple[Any, Any]:
    def launch(browser: Any) -> tuple[Any, Any]:
        context = browser.browser_type.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        page = context.new_page()
        page.add_init_script(FIXTURE_JS)
        page.goto(url)
        page.evaluate("() => window.demo.ready.then(() => true)")
        return context, page

    return chromium.call(launch, timeout=300)


def test_closed_context_resumes_in_same_profile(
    chromium: Any, web_cas: Any, tmp_path: Path
) -> None:
    import hf_xet

    server = web_cas
    path = server.web_root / "_fixtures" / "resume.bin"
    rng = random.Random(2323)
    digest = hashlib.sha256()
    with path.open("wb") as f:
        for _ in range(SIZE // (16 * MIB)):
            block = rng.randbytes(16 * MIB)
            digest.update(block)
            f.write(block)
    profile = tmp_path / "profile"
    url = f"{server.url}/index.html?secret={server.dev_secret}&workers=2"
    name = journal_name(server.url, "")

    # 1. start the upload, close the whole context at >= 60 % acknowledged
    server.reset_stats()
    context, page = _open(chromium, profile, url)
    try:
        assert chromium.call(lambda _b: page.evaluate(START_JS)) == SIZE
        deadline = time.monotonic() + 600
        while True:
            state = chromium.call(lambda _b: page.evaluate(ACKNOWLEDGED_JS, name))
            assert state["error"] is None, state["error"]
            if state["bytes"] >= 0.6 * SIZE:
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.1)
    finally:
        chromium.call(lambda _b: context.close())
    acknowledged = state["bytes"]
    sent_first = server.stats()["xorb_bytes_received"]

    # 2. a new page in the same profile uploads the same file
    server.reset_stats()
    context, page = _open(chromium, profile, url)
    try:
        started = time.monotonic()
        out = chromium.call(lambda _b: page.evaluate(RESUME_JS), timeout=900)
        seconds = time.monotonic() - started
        leftover = chromium.call(lambda _b: page.evaluate(ACKNOWLEDGED_JS, name))
    finally:
        chromium.call(lambda _b: context.close())
    sent = server.stats()["xorb_bytes_received"]
    metrics = out["metrics"]
    print(
        f"\nbrowser resume 512 MiB: closed at {acknowledged / SIZE:.0%} acknowledged "
        f"({sent_first / MIB:.1f} MiB received); new page sent {sent / MIB:.1f} MiB in "
        f"{seconds:.1f} s, bytesResumed {metrics['bytesResumed'] / MIB:.1f} MiB"
    )
    assert sent <= 0.4 * SIZE + 64 * MIB
    assert metrics["xorbBytesUploaded"] == sent
    assert metrics["bytesResumed"] >= acknowledged and out["lastBytesResumed"] > 0
    assert metrics["resumedXorbs"] > 0 and metrics["resumeMissingXorbs"] == 0
    assert leftover["bytes"] == 0  # registered: the journal is empty again
    (info,) = hf_xet.hash_files([str(path)])
    assert out["up"]["fileHash"] == info.hash and out["up"]["fileSize"] == SIZE
    assert out["up"]["sha256"] == digest.hexdigest()

    # 3. downloads: ours (verified against the file hash) and hf_xet's, byte-identical
    repo = f"models/{REPO_NAME}"
    ours = tmp_path / "ours.bin"

    async def download() -> None:
        token = server.token("read", repo=repo)
        async with XetSession(server.url, token, resume=False) as session:
            await session.download_to_file(info.hash, SIZE, ours)

    asyncio.run(download())
    theirs = tmp_path / "hf.bin"
    server.hf_download(
        [{"hash": info.hash, "size": SIZE, "dest": theirs}], hf_home=tmp_path / "hf", repo=repo
    )
    for got in (ours, theirs):
        h = hashlib.sha256()
        with got.open("rb") as f:
            while block := f.read(16 * MIB):
                h.update(block)
        assert h.hexdigest() == digest.hexdigest(), got
    path.unlink()
