// Worker half of bench/byob_stall.py: reads blob[from, end) — or the whole Blob when `whole` —
// the way the message says (BYOB stream into a fresh buffer, default stream reader, or
// slice().arrayBuffer()) and answers with the byte count.
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

async function readDefault(blob) {
  const reader = blob.stream().getReader();
  let total = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return total;
    total += value.byteLength;
  }
}

self.onmessage = async (event) => {
  const { id, blob, from, end, whole, mode } = event.data;
  try {
    const part = whole ? blob : blob.slice(from, end);
    const n = mode === "byob" ? await readByob(part)
      : mode === "stream" ? await readDefault(part)
        : (await part.arrayBuffer()).byteLength;
    postMessage({ id, n });
  } catch (err) {
    postMessage({ id, error: String(err) });
  }
};
