// Worker of bench/floor_page.mjs (bench/floor.py): the transport work of an upload and a
// download with nothing else in the way. Ops (each answers {id, ...}):
//   {op: "init", sab, module}                  the shared block slots of "read"; the
//                                              compiled xet_kernels.wasm for "scanhash"
//   {op: "scanhash", id, blob, start, end}     blob[start, end) read into wasm memory,
//                                              gear-scanned and BLAKE3-hashed (64 KiB chunks)
//   {op: "read", id, blob, start, end, dst}    blob[start, end) read (arrayBuffer of a slice,
//                                              as the pool's readscan) and copied to sab at dst
//   {op: "hold", buffer, length}               today's upload body: made a Blob, its last byte
//                                              read (the browser holds it all), buffer back
//   {op: "send", id, url}                      the held Blob PUT to url
//   {op: "sendu8", id, url, buffer, length}    the buffer PUT as a Uint8Array, buffer back
//   {op: "get", id, url}                       url fetched, the body read with BYOB into
//                                              recycled 1 MiB buffers, each transferred to the
//                                              page as {id, chunk}; then {id, done, bytes}
//   {op: "give", buffers}                      buffers handed back by the page for reuse
//                                              (up to 160: four bodies' 32 MiB batches)
//   {op: "ping", id}                           answered at once (the worker has started)
let sab = null;
let heldBody = null;
const spare = [];
const BLOCK = 1 << 20;

// "scanhash": the kernels of xet_kernels.wasm, instantiated from the Module the page posts
let kernels = null;
let arena = 0;
const CHUNK = 65536;

/** blob[start, end) read, copied into wasm memory, gear-scanned and BLAKE3-hashed in 64 KiB
 *  chunks: the per-byte work of hashFile for one block, with no page in the loop. */
async function scanHash({ id, blob, start, end }) {
  const n = end - start;
  const count = Math.ceil(n / CHUNK);
  const bytes = new Uint8Array(await blob.slice(start, end).arrayBuffer());
  const need = 64 + count * 4 + count * 32 + n + 64;
  if (arena === 0 || need > arena.size) arena = { base: kernels.xk_reserve(need), size: need };
  const key = arena.base, state = key + 32, lens = key + 64;
  const out = lens + count * 4, data = (out + count * 32 + 63) & ~63;
  new Uint8Array(kernels.memory.buffer, data, n).set(bytes);
  const sizes = new Uint32Array(kernels.memory.buffer, lens, count).fill(CHUNK);
  sizes[count - 1] = n - (count - 1) * CHUNK;
  new Uint8Array(kernels.memory.buffer, state, 8).fill(0);
  kernels.xk_gear_scan(data, n, state, out, count * 8);
  kernels.xk_blake3_keyed_many(data, lens, count, key, out);
  postMessage({ id });
}

async function read({ id, blob, start, end, dst }) {
  const bytes = new Uint8Array(await blob.slice(start, end).arrayBuffer());
  new Uint8Array(sab, dst, end - start).set(bytes);
  postMessage({ id });
}

async function hold({ buffer, length }) {
  heldBody = new Blob([new Uint8Array(buffer, 0, length)]);
  if (length) await heldBody.slice(length - 1).arrayBuffer();
  postMessage({ op: "held", buffer }, [buffer]);
}

async function send({ id, url }) {
  const resp = await fetch(url, { method: "PUT", body: heldBody });
  await resp.arrayBuffer();
  heldBody = null;
  postMessage({ id, status: resp.status });
}

async function sendU8({ id, url, buffer, length }) {
  const resp = await fetch(url, { method: "PUT", body: new Uint8Array(buffer, 0, length) });
  await resp.arrayBuffer();
  postMessage({ id, status: resp.status, buffer }, [buffer]);
}

async function get({ id, url }) {
  const resp = await fetch(url);
  if (!resp.ok) throw new Error(`${url}: HTTP ${resp.status}`);
  const reader = resp.body.getReader({ mode: "byob" });
  let bytes = 0;
  for (;;) {
    let buf = spare.pop() ?? new ArrayBuffer(BLOCK);
    let filled = 0;
    // fill the whole buffer (fewer, larger messages), or stop at the end of the body
    let done = false;
    while (filled < BLOCK) {
      const r = await reader.read(new Uint8Array(buf, filled, BLOCK - filled));
      if (r.done) { done = true; buf = r.value ? r.value.buffer : new ArrayBuffer(BLOCK); break; }
      buf = r.value.buffer;
      filled += r.value.byteLength;
    }
    if (filled) {
      bytes += filled;
      postMessage({ id, chunk: buf, length: filled }, [buf]);
    } else {
      spare.push(buf);
    }
    if (done) break;
  }
  postMessage({ id, done: true, bytes });
}

const HANDLERS = {
  init: ({ sab: shared, module }) => {
    sab = shared ?? sab;
    if (module) kernels = new WebAssembly.Instance(module, {}).exports;
  },
  scanhash: scanHash,
  ping: ({ id }) => postMessage({ id }),
  read, hold, send, sendu8: sendU8, get,
  give: ({ buffers }) => { for (const b of buffers) if (spare.length < 160) spare.push(b); },
};

self.onmessage = async (event) => {
  const msg = event.data;
  try {
    await HANDLERS[msg.op](msg);
  } catch (err) {
    postMessage({ id: msg.id, error: String(err && err.message ? err.message : err) });
  }
};
