"""A File that can no longer be read, in headless Chromium against the real local CAS server.

Chromium refuses to read a chosen ``File`` once it changed on disk (``NotReadableError``), the
everyday case of a user editing or re-exporting a file while it uploads. Every way in must say
so with one typed error, ``XetReadError`` — the worker pool's reads, the side worker's SHA-256,
this thread's reads (no pool), ``hashFile`` — not a kernel failure or a bare ``JsException``,
and without "unhandled exception" noise in the console; the session stays usable and
``finalize()`` registers only the files that were read."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import MIB, DemoPage, random_bytes, requires_browser

pytestmark = requires_browser

READ_JS = """
async () => {
  const xet = window.demo.xet;
  const s = await window.writeSession('test/read');
  const file = document.getElementById('files').files[0];
  const failure = (err) => ({name: err.name, message: err.message});
  const out = {size: file.size};
  try {
    for (const [key, call] of [
      ['upload', () => s.uploadFile(file)],
      ['uploadSha', () => s.uploadFile(file, {sha256: true})],
      ['hash', () => xet.hashFile(file)],
      ['hashSha', () => xet.hashFile(file, {sha256: true})],
    ]) {
      try {
        await call();
        out[key] = 'resolved';
      } catch (err) {
        out[key] = failure(err);
      }
    }
    const ok = await s.uploadBytes(new TextEncoder().encode('still usable'));
    const commit = await s.finalize();
    out.ok = ok;
    out.committed = commit.files.map((f) => f.fileHash);
  } finally {
    await s.close();
  }
  return out;
}
"""


def _choose_then_change(page: DemoPage, path: Path) -> None:
    """Choose ``path`` in the page's file input, then change the file on disk (once the page
    has looked at the File: Chromium snapshots its size and time at the first access)."""
    page.call(lambda p: p.set_input_files("#files", str(path)))
    assert (
        page.evaluate("() => document.getElementById('files').files[0].size") == path.stat().st_size
    )
    with path.open("ab") as f:
        f.write(b"edited after it was chosen")
    later = time.time() + 10
    os.utime(path, (later, later))


@pytest.mark.parametrize("query", [{"workers": 2, "sha256Worker": 1}, {"workers": 0}])
def test_a_changed_file_gives_xet_read_error(
    open_page: Any, tmp_path: Path, query: dict[str, Any]
) -> None:
    page = open_page(**query)
    path = tmp_path / "model.bin"
    path.write_bytes(random_bytes(40 * MIB + 11, 71))
    _choose_then_change(page, path)
    out = page.evaluate(READ_JS)
    assert out["size"] == 40 * MIB + 11  # the File still has the size it was chosen with
    for key in ("upload", "uploadSha", "hash", "hashSha"):
        got = out[key]
        assert got != "resolved", f"{key}: read a changed file"
        assert got["name"] == "XetReadError", (key, got)
        assert "NotReadableError" in got["message"] and "choose it again" in got["message"]
    # the session went on: only the file that could be read is registered
    assert out["committed"] == [out["ok"]["fileHash"]]
    assert out["ok"]["sha256"] == hashlib.sha256(b"still usable").hexdigest()
    noise = [line for line in page.console if "Unhandled" in line or "never retrieved" in line]
    assert not noise, noise
