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
//   {op: "getblob", id, url, part, split}      url fetched, the body read with BYOB into
//                                              recycled 1 MiB buffers, copied into a 32 MiB
//                                              segment of wasm memory (as web/xet_worker.mjs's
//                                              RangeDecoder writes decoded bytes); each full
//                                              segment made into Blobs of at most `part`
//                                              bytes (split: one Blob per segment made of
//                                              `part`-byte views); {id, blobs, bytes}
//   {op: "getstream", id, url}                 as getblob, but the Blob made by
//                                              `new Response(stream).blob()` of a pull stream
//                                              whose chunks are views of a ring of four 1 MiB
//                                              slots of wasm memory (a slot is written again
//                                              only after three more pulls); {id, blobs, bytes}
//   {op: "give", buffers}                      buffers handed back by the page for reuse
//                                              (up to 160: four bodies' 32 MiB batches)
//   {op: "ping", id}                           answered at once (the worker has started)
// and for "upload/combined" (one block of 16 MiB per slot of this worker's wasm memory):
//   {op: "cblock", id, blob, start, end, slot, slots, blockBytes} blob[start, end) read into the slot, gear-
//                                              scanned, cut into chunks (8-128 KiB rules, from
//                                              the block's start: a floor), BLAKE3 per chunk;
//                                              answers the chunks' 8-byte record headers
//   {op: "csha", id, slot, length, state, total} the SHA-256 link of the slot's block: state
//                                              (8 words) in, state out; with total (the
//                                              file's size) the last link: padded, digest out
//   {op: "ccrc", id, slot, headers, crc, copy} the CRC-64 of the block's records (header,
//                                              chunk bytes) continued from crc (8 bytes); with
//                                              copy, the records written raw in wasm memory
//                                              (xk_encode_records, CRC included) and answered
//                                              as a Blob of them
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

// "upload/combined": this worker's slots in its wasm memory (laid out on first use)
const MIN_CHUNK = 8192, MAX_CHUNK = 131072;
let comb = null;

function combinedLayout(slots, blockBytes, copy) {
  const cands = blockBytes / 16;  // u32 candidate offsets (an error if ever short)
  const maxChunks = Math.ceil(blockBytes / MIN_CHUNK) + 1;
  const recBytes = copy ? blockBytes + 8 * maxChunks + 64 : 0;  // raw records of a block
  const per = blockBytes + cands * 4 + maxChunks * 4 + maxChunks * 32 + recBytes + 256;
  const shared = 256 + (copy ? (maxChunks + 63 & ~63) + (128 << 10) : 0);  // schemes, scratch
  const base = kernels.xk_reserve(shared + slots * per);
  if (!base) throw new Error("xk_reserve failed");
  comb = { blockBytes, cands, maxChunks, key: base, state: base + 32, crc: base + 64,
           tail: base + 128, schemes: base + 256, scratch: base + 256 + (maxChunks + 63 & ~63),
           slots: [] };
  for (let i = 0, at = base + shared; i < slots; i++, at += per) {
    const lens = at + blockBytes + cands * 4, out = lens + maxChunks * 4;
    comb.slots.push({ data: at, cand: at + blockBytes, lens, out, rec: out + maxChunks * 32,
                      n: 0, count: 0 });
  }
}

async function cBlock({ id, blob, start, end, slot, slots, blockBytes, copy }) {
  const n = end - start;
  const bytes = new Uint8Array(await blob.slice(start, end).arrayBuffer());
  if (!comb) combinedLayout(slots, blockBytes, copy);
  const s = comb.slots[slot];
  new Uint8Array(kernels.memory.buffer, s.data, n).set(bytes);
  new Uint8Array(kernels.memory.buffer, comb.state, 8).fill(0);
  const found = kernels.xk_gear_scan(s.data, n, comb.state, s.cand, comb.cands);
  if (found > comb.cands) throw new Error(`gear scan: ${found} candidates`);
  // the chunker's size rules over the candidates (one step per candidate, not per byte)
  const cand = new Uint32Array(kernels.memory.buffer, s.cand, found);
  const lens = new Uint32Array(kernels.memory.buffer, s.lens, comb.maxChunks);
  let count = 0, chunkStart = 0, ci = 0;
  for (;;) {
    while (ci < found && cand[ci] + 1 - chunkStart < MIN_CHUNK) ci++;
    let cut;
    if (ci < found && cand[ci] + 1 - chunkStart <= MAX_CHUNK) cut = cand[ci++] + 1;
    else if (chunkStart + MAX_CHUNK <= n) cut = chunkStart + MAX_CHUNK;
    else break;
    lens[count++] = cut - chunkStart;
    chunkStart = cut;
  }
  if (chunkStart < n) lens[count++] = n - chunkStart;
  kernels.xk_blake3_keyed_many(s.data, s.lens, count, comb.key, s.out);
  s.n = n;
  s.count = count;
  // record headers: version 0, stored size (3 bytes LE), scheme 0 (raw), size (3 bytes LE)
  const headers = new Uint8Array(8 * count);
  for (let i = 0; i < count; i++) {
    const len = lens[i], h = i * 8;
    headers[h + 1] = headers[h + 5] = len & 255;
    headers[h + 2] = headers[h + 6] = (len >> 8) & 255;
    headers[h + 3] = headers[h + 7] = len >> 16;
  }
  postMessage({ id, headers }, [headers.buffer]);
}

function cSha({ id, slot, length, state, total }) {
  const s = comb.slots[slot];
  const words = new Uint32Array(kernels.memory.buffer, comb.state, 8);
  words.set(state);
  const whole = length - (length % 64);
  kernels.xk_sha256_blocks(comb.state, s.data, whole / 64);
  if (total === undefined) { postMessage({ id, state: words.slice() }); return; }
  // the last link: the tail, 0x80, zeros and the bit length (big endian) in 1 or 2 blocks
  const rest = length - whole, blocks = rest < 56 ? 1 : 2;
  const tail = new Uint8Array(kernels.memory.buffer, comb.tail, 128).fill(0);
  tail.set(new Uint8Array(kernels.memory.buffer, s.data + whole, rest));
  tail[rest] = 0x80;
  new DataView(kernels.memory.buffer, comb.tail + blocks * 64 - 8).setBigUint64(0, BigInt(total) * 8n);
  kernels.xk_sha256_blocks(comb.state, comb.tail, blocks);
  const digest = new DataView(kernels.memory.buffer, comb.state, 32);
  let hex = "";
  for (let i = 0; i < 8; i++) hex += digest.getUint32(i * 4, true).toString(16).padStart(8, "0");
  postMessage({ id, digest: hex });
}

function cCrc({ id, slot, headers, crc, copy }) {
  const s = comb.slots[slot];
  const mem = new Uint8Array(kernels.memory.buffer);
  mem.set(crc, comb.crc);
  if (copy) {
    const size = kernels.xk_encode_records(s.data, s.count, s.lens, comb.schemes, s.rec,
                                           comb.scratch, comb.crc);
    if (size !== s.n + 8 * s.count) throw new Error(`xk_encode_records: ${size}`);
    const blob = new Blob([new Uint8Array(kernels.memory.buffer, s.rec, size)]);
    postMessage({ id, crc: mem.slice(comb.crc, comb.crc + 8), blob });
    return;
  }
  const lens = new Uint32Array(kernels.memory.buffer, s.lens, s.count);
  for (let i = 0, at = s.data; i < s.count; at += lens[i++]) {
    mem.set(headers.subarray(i * 8, i * 8 + 8), comb.tail);
    kernels.xk_crc64_nvme(comb.tail, 8, comb.crc);
    kernels.xk_crc64_nvme(at, lens[i], comb.crc);
  }
  postMessage({ id, crc: mem.slice(comb.crc, comb.crc + 8) });
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

/** One BLOCK of a BYOB body reader into a spare buffer: {buf, filled, done} (filled < BLOCK
 *  only at the body's end). */
async function fillBlock(reader) {
  let buf = spare.pop() ?? new ArrayBuffer(BLOCK);
  let filled = 0;
  while (filled < BLOCK) {
    const r = await reader.read(new Uint8Array(buf, filled, BLOCK - filled));
    if (r.done) return { buf: r.value ? r.value.buffer : new ArrayBuffer(BLOCK), filled, done: true };
    buf = r.value.buffer;
    filled += r.value.byteLength;
  }
  return { buf, filled, done: false };
}

async function get({ id, url }) {
  const resp = await fetch(url);
  if (!resp.ok) throw new Error(`${url}: HTTP ${resp.status}`);
  const reader = resp.body.getReader({ mode: "byob" });
  let bytes = 0;
  for (;;) {
    // the whole buffer (fewer, larger messages), or up to the end of the body
    const { buf, filled, done } = await fillBlock(reader);
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

// "getblob": a segment per body being read (kept for the next bodies)
const SEGMENT = 32 << 20;
const spareMemories = [];

/** A memory as the kernels' (2 MiB initial, 2 GiB maximum), grown to hold a segment. */
function segmentMemory() {
  const memory = new WebAssembly.Memory({ initial: 32, maximum: 32768 });
  memory.grow((SEGMENT >> 16) + 1 - 32);
  return memory;
}

function segmentBlobs(memory, length, part, split, blobs) {
  const seg = new Uint8Array(memory.buffer, 0, length);
  const views = [];
  for (let at = 0; at < length; at += part) views.push(seg.subarray(at, Math.min(length, at + part)));
  if (split) blobs.push(new Blob(views));
  else for (const v of views) blobs.push(new Blob([v]));
}

/** Busy for `us` microseconds (the decode's CPU time per block, in the w* modes). */
function spin(us) {
  const end = performance.now() + us / 1000;
  while (performance.now() < end);
}

async function getBlob({ id, url, part, split, spinUs }) {
  const memory = spareMemories.pop() ?? segmentMemory();
  const resp = await fetch(url, { cache: "no-store" });
  if (!resp.ok) throw new Error(`${url}: HTTP ${resp.status}`);
  const reader = resp.body.getReader({ mode: "byob" });
  const blobs = [];
  let bytes = 0, fill = 0;
  for (;;) {
    const { buf, filled, done } = await fillBlock(reader);
    spin(spinUs * filled / BLOCK);
    let at = 0;
    while (at < filled) {
      const n = Math.min(filled - at, SEGMENT - fill);
      new Uint8Array(memory.buffer, fill, n).set(new Uint8Array(buf, at, n));
      fill += n;
      at += n;
      if (fill === SEGMENT) { segmentBlobs(memory, fill, part, split, blobs); fill = 0; }
    }
    bytes += filled;
    spare.push(buf);
    if (done) break;
  }
  if (fill) segmentBlobs(memory, fill, part, split, blobs);
  spareMemories.push(memory);
  postMessage({ id, blobs, bytes });
}

const RING = 4;

async function getStream({ id, url, spinUs }) {
  const memory = spareMemories.pop() ?? segmentMemory();
  const resp = await fetch(url, { cache: "no-store" });
  if (!resp.ok) throw new Error(`${url}: HTTP ${resp.status}`);
  const reader = resp.body.getReader({ mode: "byob" });
  let bytes = 0, k = 0;
  const stream = new ReadableStream({
    async pull(controller) {
      const { buf, filled, done } = await fillBlock(reader);
      spin(spinUs * filled / BLOCK);
      if (filled) {
        const at = (k++ % RING) * BLOCK;
        new Uint8Array(memory.buffer, at, filled).set(new Uint8Array(buf, 0, filled));
        controller.enqueue(new Uint8Array(memory.buffer, at, filled));
        bytes += filled;
      }
      spare.push(buf);
      if (done) controller.close();
    },
  }, { highWaterMark: 0 });
  const blob = await new Response(stream).blob();
  spareMemories.push(memory);
  postMessage({ id, blobs: [blob], bytes });
}

const HANDLERS = {
  init: ({ sab: shared, module }) => {
    sab = shared ?? sab;
    if (module) kernels = new WebAssembly.Instance(module, {}).exports;
  },
  scanhash: scanHash,
  ping: ({ id }) => postMessage({ id }),
  read, hold, send, sendu8: sendU8, get, getblob: getBlob, getstream: getStream, cblock: cBlock, csha: cSha, ccrc: cCrc,
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
