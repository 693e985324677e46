// Worker half of bench/byob_stall.py: reads blob[from, end) — or the whole Blob when `whole` —
// the way the message says (BYOB stream into a fresh buffer, default stream reader, or
// slice().arrayBuffer()) and answers with the byte count.
import { drain } from "./blob_drain.mjs";

async function readByob(blob) {
  const reader = blob.stream().getReader({ mode: "byob" });
  let buffer = new ArrayBuffer(16 << 20);
  let total = 0;
  for (;;) {
    const { value, done } = await reader.read(new Uint8Array(buffer));
    if (value) buffer = value.buffer;
    if (done) return total;
    total += value.byteLength;
  }
}

// fetch mode (bench/byob_stall.py --fetch): the body of a GET read with a BYOB reader into
// recycled 1 MiB buffers, as web/xet_worker.mjs's readBlock does for xorb ranges.
const spare = [];
async function fetchByob(url) {
  const resp = await fetch(url, { cache: "no-store" });
  const reader = resp.body.getReader({ mode: "byob" });
  let total = 0;
  for (;;) {
    let buffer = spare.pop() ?? new ArrayBuffer(1 << 20);
    let filled = 0;
    let done = false;
    while (filled < buffer.byteLength) {
      const r = await reader.read(new Uint8Array(buffer, filled));
      if (r.value) buffer = r.value.buffer;
      if (r.done) { done = true; break; }
      filled += r.value.byteLength;
    }
    total += filled;
    if (spare.length < 32) spare.push(buffer);
    if (done) return total;
  }
}

self.onmessage = async (event) => {
  const { id, blob, from, end, whole, mode, url } = event.data;
  try {
    if (url) {
      postMessage({ id, n: await fetchByob(url) });
      return;
    }
    const part = whole ? blob : blob.slice(from, end);
    const n = mode === "byob" ? await readByob(part)
      : mode === "stream" ? await drain(part)
        : (await part.arrayBuffer()).byteLength;
    postMessage({ id, n });
  } catch (err) {
    postMessage({ id, error: String(err) });
  }
};
