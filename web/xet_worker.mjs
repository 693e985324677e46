// Kernel worker of the xet_pyodide hashing pool (driven by xet_pyodide/io/workers.py).
//
// Each worker instantiates the package's xet_kernels.wasm (the compiled WebAssembly.Module is
// posted once by the page; see docs/kernels.md for the C ABI) and works on a SharedArrayBuffer
// the page shares with every worker. Messages in:
//
//   {op: "init", module, sab, byobStallMs?}        -> {op: "ready", warmMs}
//   {op: "gear", id, from, start, end, base}       -> {id, cands: Uint32Array}
//       gear candidates of sab[from, end) scanned from state 0; only positions >= start are
//       reported, as offsets from `base`. `start - from` (<= 63 bytes) is the history prefix
//       that makes a slice's candidates independent of the scan state before it.
//   {op: "hash", id, off, lens, count, out}        -> {id}
//       keyed BLAKE3 (DATA_KEY) of `count` consecutive chunks at sab[off, ...) whose sizes
//       are the u32 array at sab[lens, lens + 4 * count); the 32-byte digests are written to
//       sab[out, out + 32 * count).
//
//   {op: "readscan", id, blob, from, start, end, dst, base}
//                                                  -> {id, cands: Uint32Array}
//       reads blob[from, end) (a Blob) itself, copies bytes [start, end) to sab[dst, ...) and
//       reports the gear candidates of positions >= start (scanned from `from`, state 0) as
//       offsets from `base` (the Blob offset of the block the slice belongs to), so the page
//       only concatenates the slices' arrays (xet_pyodide/io/workers.py: WorkerPool.read_scan).
//   {op: "sha256blocks", id, off, len, state, head} -> {id, state: Uint8Array(32)}
//       one link of a file's SHA-256 chained through the pool (xet_pyodide/io/pool_sha.py):
//       compresses the 64-byte blocks of head (0-63 bytes left over by the previous link)
//       followed by sab[off, off + len) (head.length + len is a multiple of 64), starting from
//       the chaining value `state` (32 bytes, big-endian words as in a digest).
//   {op: "sha256", id, blob, block}                 -> {id, digest: Uint8Array(32)}
//       the SHA-256 of a whole Blob, read here (its stream, into one reused `block`-byte
//       buffer); {op: "cancel", id} stops it silently. Used by a worker of its own
//       (WorkerPool.sha256_blob), so a long file never holds up the pool.
//   {op: "fetch", sid, url, method, headers}       -> {stream: sid, status, headers, url, byob,
//                                                      byobBodies},
//                                                     then {stream: sid, chunk: Uint8Array}...
//                                                     (transferred), then {stream: sid, done}
//       a streamed GET of a download (xet_pyodide/io/pool_fetch.py): the body is read here,
//       off the page's thread. At most STREAM_WINDOW bytes are sent ahead of the page's
//       {op: "ack", sid, bytes, buffers?} (buffers: the consumed chunks' ArrayBuffers,
//       transferred back for reuse); a failure is {stream: sid, error}; {op: "abort", sid}
//       stops it silently.
//   {op: "fetch", ..., decode: {chunks, hint, hash, length}}
//                                                  -> the head (decoding: true on a 2xx), then
//                                                     {stream: sid, got: n}..., then
//                                                     {stream: sid, decoded: {blobs, sizes,
//                                                     digests}} or {stream: sid, bad: "message"}
//       the same GET, its body decoded and hashed here into a Blob (downloadToBlob: see
//       "op fetch with `decode`" below); no acks.
//   {op: "hold", buffer, length}                    -> {op: "held", buffer} (transferred back)
//       makes the request body of one upload a Blob of buffer[0, length) (a worker started
//       for this body alone; xet_pyodide/io/body_worker.py) and returns the buffer for reuse
//       once the Blob is complete in the browser process.
//   {op: "send", id, url, method, headers}          -> {op: "sent", id, status, headers, url,
//                                                      body: ArrayBuffer} or {op: "sent", id, error}
//       one attempt of the upload: fetch with the held Blob as its body, the (small) response
//       read whole. {op: "cancelsend", id} aborts it silently. The page terminates the worker
//       when the upload ended, which frees the Blob at once (no garbage collection needed).
//
// Errors come back as {id, error: "message", kind}: kind "read" when a Blob could not be read
// (the caller's input: XetReadError in Python), otherwise absent. Only "fetch" touches the
// network.

const DATA_KEY = new Uint8Array([
  102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28,
  157, 228, 33, 16, 155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41,
]);

let kernels = null; // wasm exports
let kernelModule = null; // the compiled module (decoding bodies instantiates it again)
let sab = null; // the shared buffer

const align16 = (n) => (n + 15) & ~15;
const WARM_UP_MS = 40;

function arena(n) {
  const base = kernels.xk_reserve(n);
  if (!base) throw new Error(`wasm kernels cannot grow memory to ${n} bytes`);
  return [base, new Uint8Array(kernels.memory.buffer)]; // fresh view: memory may have grown
}

function gearScan(src, len) {
  // src: Uint8Array of `len` bytes (anywhere). Returns [heap, outPtr, count].
  let cap = (len >>> 10) + 256; // random data: about len / 65536 candidates
  for (;;) {
    const dataOff = 16;
    const outOff = align16(dataOff + len);
    const [base, heap] = arena(outOff + 4 * cap);
    heap.fill(0, base, base + 8); // u64 state = 0
    heap.set(src, base + dataOff);
    const count = kernels.xk_gear_scan(base + dataOff, len, base, base + outOff, cap) >>> 0;
    if (count <= cap) return [heap, base + outOff, count];
    cap = count; // crafted input with more candidates than expected: retry with room for all
  }
}

function gear({ id, from, start, end, base }) {
  const len = end - from;
  const [heap, outPtr, count] = gearScan(new Uint8Array(sab, from, len), len);
  postCandidates(id, new Uint32Array(heap.buffer, outPtr, count), start - from, from - base);
}

function postCandidates(id, found, skip, shift) {
  // found: candidates of a scan from `from` (state 0), relative to `from`. Drops those in the
  // first `skip` bytes (the history prefix) and posts the rest plus `shift` (= from - base):
  // offsets from the block start, which the page concatenates without touching them.
  let i = 0;
  while (i < found.length && found[i] < skip) i++;
  const cands = new Uint32Array(found.length - i);
  for (let j = 0; j < cands.length; j++) cands[j] = found[i + j] + shift;
  postMessage({ id, cands }, [cands.buffer]);
}

function hashInto(src, lengths, heapOut) {
  // Keyed BLAKE3 of the messages in `src` (sizes `lengths`); digests copied to heapOut.
  const n = lengths.length;
  const lensOff = 32;
  const outOff = align16(lensOff + 4 * n);
  const dataOff = align16(outOff + 32 * n);
  const [base, heap] = arena(dataOff + src.length);
  heap.set(DATA_KEY, base);
  new Uint32Array(heap.buffer, base + lensOff, n).set(lengths);
  heap.set(src, base + dataOff);
  kernels.xk_blake3_keyed_many(base + dataOff, base + lensOff, n, base, base + outOff);
  heapOut.set(heap.subarray(base + outOff, base + outOff + 32 * n));
}

function hash({ id, off, lens, count, out }) {
  const lengths = new Uint32Array(sab, lens, count);
  let total = 0;
  for (let i = 0; i < count; i++) total += lengths[i];
  hashInto(new Uint8Array(sab, off, total), lengths, new Uint8Array(sab, out, 32 * count));
  postMessage({ id });
}

// ------------------------------------------------------------------ BYOB Blob reads
//
// The side worker reads a whole Blob through its stream with a BYOB reader into one reused
// buffer (see sha256Blob). Chromium 156 hangs a BYOB read for good when two BYOB streams of
// Blobs are read at once in one worker (reproduced in a bare page within seconds, with or
// without buffer reuse; one stream at a time per worker ran 9,000+ reads without a stall;
// default readers and arrayBuffer() never stalled). So: at most one BYOB stream per worker
// at a time (byobTurn), and a watchdog: a read that brings nothing for byobStallMs is given
// up, and this worker reads with slice().arrayBuffer() from then on. (The pool's block reads
// use arrayBuffer(): with reads serialized per worker, BYOB measured no faster there.)

let byobStallMs = 10000; // init's byobStallMs overrides it (tests)
let byobUsable = true;
let byobQueue = Promise.resolve(); // the end of the last BYOB stream's turn in this worker
const STALLED = new Error("a BYOB read of a Blob stalled");

// A Blob that cannot be read (NotReadableError once a chosen file changed on disk, ...) is
// the caller's input problem, not ours: such failures go back with kind "read" and become
// XetReadError in Python (anything else is XetKernelError).
function readError(err) {
  const name = err && err.name && err.name !== "Error" ? `${err.name}: ` : "";
  return Object.assign(new Error(name + errorText(err)), { kind: "read" });
}

async function readSlice(blob, from, end) {
  // blob[from, end) as a Uint8Array, or a "read" error (also when it comes out short).
  let buffer;
  try {
    buffer = await blob.slice(from, end).arrayBuffer();
  } catch (err) {
    throw readError(err);
  }
  if (buffer.byteLength !== end - from) {
    throw readError(`${end - from} bytes expected, ${buffer.byteLength} read`);
  }
  return new Uint8Array(buffer);
}

async function byobTurn(fn) {
  // Run fn() when no other BYOB stream of this worker is open.
  const previous = byobQueue;
  let done;
  byobQueue = new Promise((resolve) => { done = resolve; });
  await previous;
  try {
    return await fn();
  } finally {
    done();
  }
}

function byobReader(blob) {
  // A BYOB reader of blob's stream, or null (BYOB unusable here, or not a byte stream).
  if (!byobUsable) return null;
  try {
    return blob.stream().getReader({ mode: "byob" });
  } catch {
    return null;
  }
}

async function byobRead(reader, view) {
  // reader.read(view), given up (STALLED; BYOB off in this worker) after byobStallMs.
  let timer;
  const stall = new Promise((_, reject) => {
    timer = setTimeout(() => reject(STALLED), byobStallMs);
  });
  try {
    return await Promise.race([reader.read(view), stall]);
  } catch (err) {
    if (err === STALLED) {
      byobUsable = false;
      console.warn("xet_pyodide worker: a Blob stream read stalled; reading slices from now on");
      reader.cancel().catch(() => {});
      throw err;
    }
    throw readError(err);
  } finally {
    clearTimeout(timer);
  }
}

// SHA-256: xk_sha256_blocks compresses whole 64-byte blocks; the chaining value lives here as
// eight u32 words (the module keeps them in host order, little endian like Uint32Array).
const SHA256_IV = [
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
// Bytes per kernel call: V8 cannot move a running call to optimized code, so the first calls
// stay short while the optimized tier is compiled in the background (warmUp() below runs it on
// a small piece too: the pool workers chain uploads' SHA-256, op sha256blocks).
const SHA_PIECE = 1 << 20;

function shaBlocks(state, bytes) {
  // Compress `bytes` (a whole number of 64-byte blocks) into `state` (Uint32Array(8)).
  for (let at = 0; at < bytes.length; at += SHA_PIECE) {
    const piece = bytes.subarray(at, Math.min(bytes.length, at + SHA_PIECE));
    const [base, heap] = arena(32 + piece.length);
    new Uint32Array(heap.buffer, base, 8).set(state);
    heap.set(piece, base + 32);
    kernels.xk_sha256_blocks(base, base + 32, piece.length >>> 6);
    state.set(new Uint32Array(heap.buffer, base, 8));
  }
}

function sha256Link({ id, off, len, state, head }) {
  // See the message list at the top. `state` comes and goes as big-endian bytes.
  const inState = new DataView(state.buffer, state.byteOffset, 32);
  const words = new Uint32Array(8);
  for (let i = 0; i < 8; i++) words[i] = inState.getUint32(4 * i);
  const headLen = head ? head.length : 0;
  if ((headLen + len) % 64 !== 0) throw new Error("sha256blocks: not whole 64-byte blocks");
  let start = 0;
  if (headLen) {  // the block that straddles the previous link: head + first bytes here
    start = 64 - headLen;
    const first = new Uint8Array(64);
    first.set(head);
    first.set(new Uint8Array(sab, off, start), headLen);
    shaBlocks(words, first);
  }
  shaBlocks(words, new Uint8Array(sab, off + start, len - start));
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) outView.setUint32(4 * i, words[i]);
  postMessage({ id, state: out }, [out.buffer]);
}

function shaFinish(state, tail, length) {
  // Pad (0x80, zeros, the bit length as a big-endian u64) and return the digest bytes.
  const last = new Uint8Array(tail.length < 56 ? 64 : 128);
  last.set(tail);
  last[tail.length] = 0x80;
  const view = new DataView(last.buffer);
  view.setUint32(last.length - 8, Math.floor(length / 0x20000000));
  view.setUint32(last.length - 4, (length * 8) >>> 0);
  shaBlocks(state, last);
  const digest = new Uint8Array(32);
  const out = new DataView(digest.buffer);
  for (let i = 0; i < 8; i++) out.setUint32(4 * i, state[i]);
  return digest;
}

const shaJobs = new Map(); // id -> {cancelled}

async function sha256Blob({ id, blob, block }) {
  // The whole Blob through one BYOB stream into one reused buffer (see "BYOB Blob reads" above:
  // concurrent uploads' digests take turns, as one worker may read only one BYOB stream at a
  // time; after a stalled read the rest is read as slices). A fresh ArrayBuffer per slice
  // (arrayBuffer()) made a 4 GiB upload's slices pile up: this worker allocates little else,
  // so its collector ran late (bench/browser.py --memory-only: peak page memory 745 -> 1176
  // MiB).
  const job = { cancelled: false };
  shaJobs.set(id, job);
  try {
    const size = blob.size;
    const step = Math.max(64, block - (block % 64));
    const state = Uint32Array.from(SHA256_IV);
    let total = 0;
    let tail = new Uint8Array(0);
    // Every call but the last gets a multiple of 64 bytes: whole blocks now, the rest of the
    // last one (< 64 bytes) is the tail.
    const consume = (bytes) => {
      const whole = bytes.length - (bytes.length % 64);
      shaBlocks(state, bytes.subarray(0, whole));
      tail = bytes.slice(whole);
      total += bytes.length;
    };
    await byobTurn(async () => {
      const reader = job.cancelled ? null : byobReader(blob);
      if (!reader) return;
      let buffer = new ArrayBuffer(Math.min(step, Math.max(size, 64)));
      let filled = 0;
      try {
        for (;;) {
          const { value, done } = await byobRead(
            reader, new Uint8Array(buffer, filled, buffer.byteLength - filled));
          if (job.cancelled) {
            reader.cancel().catch(() => {});
            return;
          }
          if (value) buffer = value.buffer; // the same memory, handed back
          if (done) break;
          filled += value.byteLength;
          if (filled === buffer.byteLength) {
            consume(new Uint8Array(buffer, 0, filled));
            filled = 0;
          }
        }
      } catch (err) {
        if (err === STALLED) return; // `filled` bytes went with the stalled read: slices below
        throw err;
      }
      if (filled) consume(new Uint8Array(buffer, 0, filled));
      reader.releaseLock();
    });
    // Slices: without BYOB, or from where a stalled stream stopped (total is a multiple of
    // `step` then).
    for (let pos = total; pos < size && !job.cancelled; pos += step) {
      consume(await readSlice(blob, pos, Math.min(size, pos + step)));
    }
    if (job.cancelled) return;
    if (total !== size) throw readError(`${size} bytes expected, ${total} read`);
    const digest = shaFinish(state, tail, size);
    postMessage({ id, digest }, [digest.buffer]);
  } finally {
    shaJobs.delete(id);
  }
}

function cancel({ id }) {
  const job = shaJobs.get(id);
  if (job) job.cancelled = true;
}

function warmUp() {
  // V8 runs wasm in a baseline tier first and cannot switch a running call to optimized code
  // (docs/kernels.md). Tier-up is triggered by use and compiled in the background, so run the
  // hot kernels on 256 KiB for a few tens of milliseconds before accepting real work: measured
  // here, the optimized code arrives after ~10-15 ms of such calls.
  const data = new Uint8Array(256 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  const lengths = new Uint32Array([65536, 65536, 65536, 65536]);
  const sink = new Uint8Array(32 * 4);
  const shaState = Uint32Array.from(SHA256_IV);
  const t0 = performance.now();
  for (let round = 0; round < 200 && (round < 16 || performance.now() - t0 < WARM_UP_MS); round++) {
    gearScan(data, data.length);
    hashInto(data, lengths, sink);
    shaBlocks(shaState, data.subarray(0, 16384));
  }
  return performance.now() - t0;
}

function init({ module, sab: shared, byobStallMs: stallMs }) {
  if (stallMs != null) byobStallMs = stallMs;
  const instance = new WebAssembly.Instance(module, {});
  kernels = instance.exports;
  kernelModule = module;
  if (kernels.xk_abi_version() !== 1) throw new Error("xet_kernels.wasm: unexpected ABI version");
  sab = shared;
  postMessage({ op: "ready", warmMs: warmUp() });
}

async function readAndScan({ id, blob, from, start, end, dst, base }) {
  const bytes = await readSlice(blob, from, end);
  const skip = start - from;
  new Uint8Array(sab, dst, end - start).set(bytes.subarray(skip));
  const [heap, outPtr, count] = gearScan(bytes, bytes.length);
  postCandidates(id, new Uint32Array(heap.buffer, outPtr, count), skip, from - base);
}

const STREAM_WINDOW = 8 << 20;
const streams = new Map(); // sid -> {controller, unacked, wake}
// Body blocks: a BYOB reader fills buffers of STREAM_BLOCK bytes that the page sends back
// with its acks ({op: "ack", ..., buffers}), so a download reads into the same few buffers
// over and over. Measured (bench/download.py, /proc): with the default reader every chunk is
// a fresh allocation, two page faults per 4 KiB of body in this thread, and garbage for the
// page's collector once transferred. At most SPARE_MAX buffers wait here for reuse.
const STREAM_BLOCK = 1 << 20;
const SPARE_MAX = 32;
const spare = [];

// Every body is read with BYOB where the stream allows it. (Chromium 156 hangs BYOB reads of
// *Blob* streams when one worker reads two at once — docs/browser.md, "Blob reads" — so Blob
// reads keep byobTurn above. Fetch bodies never showed it: bench/byob_stall.py --fetch ran
// 2 workers x 4 and 1 worker x 8 BYOB bodies at a time without a stall, docs/browser.md
// "Downloads: where the CPU goes". A hung body would end with the page's read timeout and be
// retried like a dropped connection.)

let byobBodies = 0; // bodies of this worker being read with BYOB now

/** The reader of a body: {reader, byob}, BYOB when the stream supports it. */
function bodyReader(body) {
  try {
    return { reader: body.getReader({ mode: "byob" }), byob: true };
  } catch {
    return { reader: body.getReader(), byob: false }; // no BYOB mode on this stream
  }
}

/** One block of at most STREAM_BLOCK bytes read with a BYOB reader into a recycled buffer:
 *  reads until the buffer is full or the body ends. Resolves to {done, value}: value is a
 *  Uint8Array over the whole filled part (undefined when nothing was left). */
async function readBlock(reader) {
  let buffer = spare.pop() ?? new ArrayBuffer(STREAM_BLOCK);
  let filled = 0;
  while (filled < STREAM_BLOCK) {
    const { done, value } = await reader.read(new Uint8Array(buffer, filled));
    if (value) buffer = value.buffer; // the read transferred it: this is the same memory
    if (done) {
      if (!filled) {
        recycle(buffer);
        return { done: true, value: undefined };
      }
      break;
    }
    filled += value.byteLength;
  }
  return { done: false, value: new Uint8Array(buffer, 0, filled) };
}

function recycle(buffer) {
  if (buffer && buffer.byteLength === STREAM_BLOCK && spare.length < SPARE_MAX) spare.push(buffer);
}

async function fetchStream({ sid, url, method, headers, decode }) {
  const controller = new AbortController();
  const state = { controller, unacked: 0, wake: null };
  streams.set(sid, state);
  try {
    // no-store: a body read once never goes to Chromium's HTTP disk cache (which costs the
    // network service ~1.3 CPU-s per GiB when it does: docs/browser.md, "The floors ...").
    const resp = await fetch(url, { method, headers, signal: controller.signal, cache: "no-store" });
    const { reader, byob } = resp.body ? bodyReader(resp.body) : { reader: null, byob: false };
    if (byob) byobBodies += 1;
    // Decoded here only when asked and the answer is a success: an error body goes to the
    // page as it is (the page reads it for the error message).
    const decoder = decode && resp.ok ? new RangeDecoder(decode) : null;
    try {
      // byob / byobBodies: how this body is read, and how many bodies this worker reads with
      // BYOB right now (diagnostics; tests/browser/test_download_workers.py checks them).
      postMessage({ stream: sid, status: resp.status, headers: [...resp.headers], url: resp.url,
                    byob, byobBodies, decoding: decoder !== null });
      if (decoder) {
        await decodeBody(sid, reader, byob, decoder, controller.signal);
        return;
      }
      while (reader) {
        while (state.unacked >= STREAM_WINDOW && !controller.signal.aborted) {
          await new Promise((resolve) => { state.wake = resolve; });
        }
        const { done, value } = byob ? await readBlock(reader) : await reader.read();
        if (done) break;
        if (!value.byteLength) continue;
        state.unacked += value.byteLength;
        postMessage({ stream: sid, chunk: value }, [value.buffer]);
      }
    } finally {
      if (byob) byobBodies -= 1;
    }
    postMessage({ stream: sid, done: true });
  } catch (err) {
    if (!controller.signal.aborted) {
      postMessage({ stream: sid, error: errorText(err) });
    }
  } finally {
    streams.delete(sid);
  }
}

// ---- op fetch with `decode`: the body decoded (and hashed) here, the page gets a Blob.
//
// `decode: {chunks, hint, hash, length}` asks for the body's chunk records to be decoded with the
// kernels' xk_decode_records (the checks of xet_pyodide/session/download_decode.py's
// RecordDecoder: the same C entry point, exactly `chunks` records, nothing after the last),
// hashed with the data key when `hash`, and made into Blobs of at most DECODED_SEGMENT bytes.
// The page then gets {stream, got: n} every GOT_BYTES of body read (its byte accounting and
// progress), and at the end {stream, decoded: {blobs: [Blob], sizes: Uint32Array, digests:
// Uint8Array | null}} (arrays transferred), or {stream, bad: "message"} for a body that does
// not decode (XetFormatError on the page), or {stream, error} for a broken connection. No
// window and no acks: nothing but counts crosses to the page until the end.

// Blob items of at most DECODED_SEGMENT. Smaller items cost more: measured with
// bench/floor.py --receive-modes and bench/peers.py --corpus float16 (per-thread faults from
// bench/thread_faults.py), a Blob per 512 KiB cuts the workers' fresh pages by a third (574k
// -> 384k per GiB) but the renderer's thread pool then takes one per 4 KiB (a data pipe per
// Blob: 263k against 83k per GiB): all Chromium 7.5-8.2 CPU-s per GiB against 6.2-6.4. One
// Blob per segment made of 512 KiB or 1 MiB views stays within the runs' spread. The workers'
// other fresh page per 4 KiB is not the Blob's: it stays when no Blob is made (a copy in a
// task of a data-pipe watcher, most likely the response body's).
const DECODED_SEGMENT = 32 << 20;
const GOT_BYTES = 4 << 20;
const MAX_UNCOMPRESSED = 128 << 10; // xet-core's chunk size limit (records.c)
const RECORDS_PER_CALL = 8192;
const RECORD_ERRORS = {
  "-1": "LZ4 block truncated",
  "-2": "LZ4 match offset is zero or points before the start of the output",
  "-3": "LZ4 output exceeds the expected size",
  "-10": "unsupported chunk record version",
  "-11": "unknown compression scheme",
  "-12": "chunk sizes exceed xet-core's limits",
  "-13": "raw chunk whose compressed and uncompressed sizes differ",
  "-14": "chunk decodes to a size other than its header states",
  "-20": "LZ4 frame truncated",
  "-21": "not an LZ4 frame (bad magic number)",
  "-22": "unsupported LZ4 frame version",
  "-23": "reserved bits set in the LZ4 frame descriptor",
  "-24": "LZ4 frames with a dictionary id are not supported",
  "-25": "invalid LZ4 block maximum size code",
  "-26": "LZ4 frame content size exceeds the expected size",
  "-27": "LZ4 frame header checksum mismatch",
  "-28": "LZ4 block exceeds the frame's maximum block size",
  "-29": "LZ4 block checksum mismatch",
  "-30": "LZ4 frame output exceeds the expected size",
  "-31": "LZ4 content checksum mismatch",
  "-32": "LZ4 frame content size does not match the decoded data",
  "-33": "no LZ4 frame found",
};

class BadBody extends Error {}

// A body being decoded owns a kernels instance of its own (the same compiled module, so the
// same optimized code): its decoded bytes are written straight into a segment of that
// instance's memory, which stays put between blocks while other bodies and tasks of this
// worker use theirs, and go from there into a Blob (the Blob constructor's copy is the only
// one). Instances are kept for the next bodies (at most SPARE_DECODERS; each holds a
// segment of DECODED_SEGMENT bytes plus a block).
const SPARE_DECODERS = 2;
const spareDecoders = [];

/** Incremental decoder of exactly `chunks` records. */
class RangeDecoder {
  constructor({ chunks, hint, hash, length }) {
    this.chunks = chunks;
    this.length = length; // the body's expected length
    this.done = 0;
    this.bytesIn = 0;
    this.sizes = new Uint32Array(chunks);
    this.digests = hash ? new Uint8Array(32 * chunks) : null;
    this.carry = new Uint8Array(0); // the start of a record split between blocks
    // At most DECODED_SEGMENT, at least one chunk (the hint may be off).
    this.segmentSize = Math.max(MAX_UNCOMPRESSED, Math.min(hint, DECODED_SEGMENT));
    this.fill = 0;
    this.blobs = [];
    this.k = spareDecoders.pop() ?? new WebAssembly.Instance(kernelModule, {}).exports;
    // Arena of this instance: key | info | digests | scratch | segment | src (carry + block).
    this.infoOff = 32;
    this.digestsOff = align16(this.infoOff + 4 * (3 + RECORDS_PER_CALL));
    this.scratchOff = align16(this.digestsOff + 32 * RECORDS_PER_CALL);
    this.segmentOff = this.scratchOff + MAX_UNCOMPRESSED;
    this.srcOff = this.segmentOff + DECODED_SEGMENT;
  }

  heap() {
    return new Uint8Array(this.k.memory.buffer); // (fresh: memory may have grown)
  }

  flush() {
    if (this.fill) {
      const base = this.k.xk_reserve(0);
      const start = base + this.segmentOff;
      this.blobs.push(new Blob([this.heap().subarray(start, start + this.fill)])); // copies
      this.fill = 0;
    }
  }

  feed(block) {
    this.bytesIn += block.length;
    const k = this.k;
    const n = this.carry.length + block.length;
    const base = k.xk_reserve(this.srcOff + n);
    if (!base) throw new Error(`wasm kernels cannot grow memory to ${this.srcOff + n} bytes`);
    let heap = this.heap();
    if (this.digests) heap.set(DATA_KEY, base);
    const src = base + this.srcOff;
    heap.set(this.carry, src);
    heap.set(block, src + this.carry.length);
    let pos = 0;
    for (;;) {
      const limit = Math.min(this.chunks - this.done, RECORDS_PER_CALL, (n - pos) >>> 3);
      if (limit <= 0) break;
      const count = k.xk_decode_records(
        src + pos, n - pos, limit, base + this.segmentOff + this.fill,
        this.segmentSize - this.fill, base + this.scratchOff, base + this.infoOff,
        this.digests ? base : 0, base + this.digestsOff);
      heap = this.heap();
      const info = new Uint32Array(heap.buffer, base + this.infoOff, 3 + Math.max(count, 0));
      if (count < 0) {
        const what = RECORD_ERRORS[String(count)] ?? `malformed (${count})`;
        throw new BadBody(`chunk record ${this.done + info[0]} of a fetched range: ${what}`);
      }
      const [used, produced, need] = info;
      this.fill += produced;
      if (count) {
        this.sizes.set(info.subarray(3, 3 + count), this.done);
        if (this.digests) {
          const at = base + this.digestsOff;
          this.digests.set(heap.subarray(at, at + 32 * count), 32 * this.done);
        }
        this.done += count;
      }
      pos += used;
      if (need) {
        this.flush(); // the next chunk does not fit in the segment: make it a Blob
        continue;
      }
      if (count < limit) break; // the next record is incomplete: it arrives with the next block
    }
    if (this.done === this.chunks && pos < n) {
      throw new BadBody(`fetched range holds more than ${this.chunks} chunks`);
    }
    this.carry = heap.slice(src + pos, src + n);
  }

  finish() {
    if (this.carry.length || this.done !== this.chunks) {
      throw new BadBody(
        `fetched range of ${this.bytesIn} bytes holds ${this.done} whole chunk records ` +
        `(+${this.carry.length} bytes), ${this.chunks} expected`);
    }
    this.flush();
    // The segments' Blobs as they are: the page's output Blob references them directly (no
    // Blob of Blobs per range in between).
    return { blobs: this.blobs, sizes: this.sizes, digests: this.digests };
  }

  /** Give the kernels instance back (once, whatever the outcome). */
  release() {
    if (this.k && spareDecoders.length < SPARE_DECODERS) spareDecoders.push(this.k);
    this.k = null;
  }
}

async function decodeBody(sid, reader, byob, decoder, signal) {
  try {
    await decodeInto(sid, reader, byob, decoder, signal);
  } finally {
    decoder.release();
  }
}

async function decodeInto(sid, reader, byob, decoder, signal) {
  let got = 0;
  try {
    while (reader) {
      const { done, value } = byob ? await readBlock(reader) : await reader.read();
      if (done) break;
      if (!value.byteLength) continue;
      decoder.feed(value);
      if (byob) recycle(value.buffer);
      got += value.byteLength;
      if (got >= GOT_BYTES) {
        postMessage({ stream: sid, got });
        got = 0;
      }
      if (signal.aborted) return;
    }
    if (got) postMessage({ stream: sid, got });
    got = 0;
    if (decoder.bytesIn < decoder.length) {
      // a body cut short is a broken connection (retried with backoff), as on the page
      throw new Error(`body ended after ${decoder.bytesIn} of ${decoder.length} bytes`);
    }
    const decoded = decoder.finish();
    const transfer = [decoded.sizes.buffer];
    if (decoded.digests) transfer.push(decoded.digests.buffer);
    postMessage({ stream: sid, decoded }, transfer);
  } catch (err) {
    if (!(err instanceof BadBody)) throw err; // (a broken connection: {error} by the caller)
    reader?.cancel().catch(() => {});
    if (got) postMessage({ stream: sid, got });
    postMessage({ stream: sid, bad: err.message });
  }
}

function wake(state) {
  if (state.wake) {
    const resolve = state.wake;
    state.wake = null;
    resolve();
  }
}

function ack({ sid, bytes, buffers }) {
  if (buffers) for (const buffer of buffers) recycle(buffer);
  const state = streams.get(sid);
  if (state) {
    state.unacked -= bytes;
    if (state.unacked < STREAM_WINDOW) wake(state);
  }
}

function abort({ sid }) {
  const state = streams.get(sid);
  if (state) {
    state.controller.abort();
    wake(state);
  }
}

let heldBody = null;
const sends = new Map(); // id -> AbortController

async function hold({ buffer, length }) {
  heldBody = new Blob([new Uint8Array(buffer, 0, length)]);
  // A read waits until the browser process holds the whole Blob: then the renderer's copy of
  // its bytes is gone, and the page hands over the next body.
  if (length) await heldBody.slice(length - 1).arrayBuffer();
  postMessage({ op: "held", buffer }, [buffer]);
}

async function send({ id, url, method, headers }) {
  const controller = new AbortController();
  sends.set(id, controller);
  try {
    const resp = await fetch(url, { method, headers, body: heldBody, signal: controller.signal });
    const body = await resp.arrayBuffer();
    postMessage({ op: "sent", id, status: resp.status, headers: [...resp.headers], url: resp.url,
                  body }, [body]);
  } catch (err) {
    if (!controller.signal.aborted) postMessage({ op: "sent", id, error: errorText(err) });
  } finally {
    sends.delete(id);
  }
}

function cancelSend({ id }) {
  sends.get(id)?.abort();
}

const HANDLERS = {
  hold, send, cancelsend: cancelSend,
  init, gear, hash, readscan: readAndScan, sha256blocks: sha256Link, sha256: sha256Blob, cancel, fetch: fetchStream, ack, abort,
};

const errorText = (err) => String(err && err.message ? err.message : err);
// A failed task (or init) answers with its id and the error; async handlers' rejections too.
const failure = (msg, err) => ({ id: msg.id, error: errorText(err), kind: err?.kind });

self.onmessage = (event) => {
  const msg = event.data;
  try {
    const pending = HANDLERS[msg.op](msg);
    if (pending instanceof Promise) pending.catch((err) => postMessage(failure(msg, err)));
  } catch (err) {
    postMessage(failure(msg, err));
  }
};
