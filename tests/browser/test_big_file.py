"""A file over 4 GiB through the JavaScript API in headless Chromium, against the real local CAS
server: ``uploadFile`` of a 4.77 GiB ``Blob``, then ``downloadToBlob`` ranges across the 2**32
byte boundary and at the end, and a full ``downloadStream`` (verified against the file hash by
the download itself). The Blob is assembled from references to three 8 MiB base Blobs plus a
16-byte stamp per block, so the page holds ~24 MiB of data and the upload mostly deduplicates;
every byte is still read, chunked and hashed."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tests.browser.conftest import MIB, DemoPage, random_bytes, requires_browser

pytestmark = [pytest.mark.slow, requires_browser]

BLOCK = 8 * MIB
COUNT = 610  # 5_117_050_880 bytes
SIZE = BLOCK * COUNT
RANGES = [
    (2**32 - 1000, 2**32 + 5000),  # across the 32-bit boundary (end exclusive, as in JS)
    (SIZE - 12345, SIZE),  # the last bytes
    (BLOCK * 511 + 7, BLOCK * 513 + 100),  # two block joins past 2**32
]

BIG_JS = """
async ([count, ranges]) => {
  const s = await window.writeSession('test/big');
  const hex = window.sha256Hex;
  const bases = await Promise.all([0, 1, 2].map((i) => window.fixture(`base${i}.bin`)));
  const parts = [];
  for (let i = 0; i < count; i++) {
    const stamp = new Uint8Array(16);
    new DataView(stamp.buffer).setBigUint64(0, BigInt(i), true);
    parts.push(stamp, bases[i % 3].slice(16));
  }
  const file = new Blob(parts);
  const out = {blobSize: file.size};
  try {
    out.upload = await s.uploadFile(file, {sha256: true});
    const commit = await s.finalize();
    out.metrics = commit.metrics;
    out.ranges = [];
    for (const [start, end] of ranges) {
      const got = await s.downloadToBlob(out.upload.fileHash, out.upload.fileSize,
                                         {range: [start, end]});
      out.ranges.push({size: got.size, got: await hex(await got.arrayBuffer()),
                       want: await hex(await file.slice(start, end).arrayBuffer())});
    }
    const reader = s.downloadStream(out.upload.fileHash, out.upload.fileSize).getReader();
    let total = 0, last = null;
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      total += value.byteLength;
      last = value;
    }
    out.streamed = total;
    out.lastPiece = await hex(last.slice(last.byteLength - 4096));
    out.lastWant = await hex(await file.slice(total - 4096, total).arrayBuffer());
  } finally {
    await s.close();
  }
  return out;
}
"""


@pytest.fixture(scope="module")
def bases() -> list[bytes]:
    return [random_bytes(BLOCK, 900 + i) for i in range(3)]


@pytest.fixture(scope="module")
def page(open_page: Any, bases: list[bytes]) -> DemoPage:
    page = open_page(workers=2)
    for i, data in enumerate(bases):
        page.add_fixture(f"base{i}.bin", data)
    return page


def test_upload_and_download_over_4_gib(page: DemoPage, bases: list[bytes]) -> None:
    digest = hashlib.sha256()
    for i in range(COUNT):
        digest.update(i.to_bytes(16, "little"))
        digest.update(memoryview(bases[i % 3])[16:])
    out = page.evaluate(BIG_JS, [COUNT, RANGES], timeout=900)
    assert out["blobSize"] == SIZE
    assert out["upload"]["fileSize"] == SIZE
    assert out["upload"]["sha256"] == digest.hexdigest()
    assert out["metrics"]["totalBytes"] == SIZE
    for (start, end), got in zip(RANGES, out["ranges"], strict=True):
        assert got["size"] == end - start and got["got"] == got["want"], (start, end)
    assert out["streamed"] == SIZE
    assert out["lastPiece"] == out["lastWant"]
