// Page of bench/floor.py: the irreducible transport and kernel work of an upload and a
// download in this browser, each timed alone over the same bytes. Every measurement is
// {phase, mode, rep, span: [t0, t1] (epoch seconds: bench/_procs.py finds each process's CPU
// between them), bytes, seconds}; kernels also give GB/s.
import { kernelOnly } from "/bench/kernels_raw.mjs";
import { drain } from "/bench/blob_drain.mjs";

const MIB = 1 << 20;
const epoch = () => (performance.timeOrigin + performance.now()) / 1000;
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function randomBuffer(bytes) {
  const out = new Uint8Array(bytes);
  for (let pos = 0; pos < bytes; pos += 65536) crypto.getRandomValues(out.subarray(pos, pos + 65536));
  return out;
}

/** A worker of bench/floor_worker.mjs with request/answer by id; `onChunk(id, msg)` gets the
 *  body pieces of "get". */
class FloorWorker {
  constructor(onChunk = null) {
    this.worker = new Worker("/bench/floor_worker.mjs", { type: "module" });
    this.waiting = new Map();
    this.nextId = 1;
    this.worker.onmessage = (event) => {
      const msg = event.data;
      if (msg.chunk !== undefined) { onChunk(msg.id, msg); return; }
      const key = msg.op === "held" ? "held" : msg.id;
      const waiter = this.waiting.get(key);
      this.waiting.delete(key);
      if (msg.error) waiter.reject(new Error(msg.error));
      else waiter.resolve(msg);
    };
  }

  call(msg, transfer = [], key = null) {
    const id = key ?? this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ ...msg, id }, transfer);
    });
  }

  post(msg, transfer = []) { this.worker.postMessage(msg, transfer); }
  terminate() { this.worker.terminate(); }
}

/** Run `count` jobs, `lanes` at a time; job(i, lane) is awaited. */
async function lanes(count, width, job) {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async (_, lane) => {
    while (next < count) await job(next++, lane);
  }));
}

/** 1. The File read once, in whole blocks (with the 63 bytes before each, as readscan), by
 *  the pool's number of workers, into shared slots (four, as the pool's). */
async function readPhase(file, config) {
  const block = config.blockMib * MIB;
  const slotBytes = block + 64;
  const sab = new SharedArrayBuffer(4 * slotBytes);
  const workers = Array.from({ length: config.workers }, () => new FloorWorker());
  for (const w of workers) w.post({ op: "init", sab });
  await Promise.all(workers.map((w) => w.call({ op: "read", blob: file.slice(0, 1), start: 0,
                                                 end: 1, dst: 0 })));  // started
  const total = Math.ceil(file.size / block);
  const t0 = epoch();
  // four slots: as many blocks in flight; block i goes to worker i % workers
  await lanes(total, 4, async (i, slot) => {
    const start = i * block, end = Math.min(file.size, start + block);
    const from = Math.max(0, start - 63);
    await workers[i % workers.length].call({ op: "read", blob: file, start: from, end,
                                             dst: slot * slotBytes });
  });
  const t1 = epoch();
  for (const w of workers) w.terminate();
  return { span: [t0, t1], bytes: file.size };
}

/** 1'. hashFile's per-byte work with nothing else: the pool's workers each read whole
 *  16 MiB blocks, scan and hash them (64 KiB chunks) in their own wasm memory, four blocks
 *  in flight; no page thread in the loop, no chunk-boundary rules, no copy to a slot. */
async function scanHashPhase(file, config, module) {
  const block = config.blockMib * MIB;
  const workers = Array.from({ length: config.workers }, () => new FloorWorker());
  for (const w of workers) w.post({ op: "init", module });
  await Promise.all(workers.map((w) => w.call({ op: "ping" })));
  const total = Math.ceil(file.size / block);
  const t0 = epoch();
  await lanes(total, 4, async (i) => {
    const start = i * block;
    await workers[i % workers.length].call({ op: "scanhash", blob: file, start,
                                             end: Math.min(file.size, start + block) });
  });
  const t1 = epoch();
  for (const w of workers) w.terminate();
  return { span: [t0, t1], bytes: file.size };
}

/** 1''. "upload/combined": the least a correct upload of the File does, all of it at once, in
 *  bare JS + the wasm kernels. The pool's workers read the File once in 16 MiB blocks (four
 *  in flight, block i on worker i % workers, each in a slot of that worker's wasm memory),
 *  gear-scan them, cut chunks by the size rules (from each block's start: boundaries are
 *  approximate at block edges, it is a floor) and BLAKE3 each chunk; the file's SHA-256 is
 *  chained block by block in file order on whichever worker holds the block (as io/pool_sha);
 *  the CRC-64 of each body's records (8-byte header + chunk bytes, all stored raw) is chained
 *  in body order; each body of bodyMib is PUT, `inflight` at a time, as a Blob of the headers
 *  and `File.slice()`s of the File itself (no chunk byte copied in the renderer), once its CRC
 *  is known (as a real upload must: the CRC goes with the xorb). A block's slot is free once
 *  its SHA-256 and CRC links are done. body "slices" (diagnostic, not a valid xorb): each body
 *  one `File.slice()` of its blocks, no headers, so the cost of a Blob of ~2000 parts shows;
 *  "copy": each block's records written raw in its worker's wasm memory (a copy, the CRC on
 *  the way) and made a Blob there, the body a Blob of its blocks' Blobs (valid, but copied;
 *  the Blobs are released only when collected: no explicit memory bound). */
async function combinedPhase(file, config, module, body = "records") {
  const block = config.blockMib * MIB;
  const perBody = Math.max(1, Math.round(config.bodyMib / config.blockMib));
  const slots = 4;
  const workers = Array.from({ length: config.workers }, () => new FloorWorker());
  for (const w of workers) w.post({ op: "init", module });
  await Promise.all(workers.map((w) => w.call({ op: "ping" })));
  const total = Math.ceil(file.size / block);
  const bodies = Math.ceil(total / perBody);
  const scanned = new Array(total), shaDone = new Array(total), crcDone = new Array(total);
  const sends = [];
  let inflight = 0, sent = 0, digest = null;
  const waiting = [];
  const send = async (k) => {
    const parts = [];
    const first = k * perBody * block;
    if (body === "slices") parts.push(file.slice(first, Math.min(file.size, first + perBody * block)));
    for (let i = k * perBody; body === "records" && i < Math.min(total, (k + 1) * perBody); i++) {
      const headers = (await scanned[i]).headers;
      let at = i * block;
      for (let c = 0; c < headers.length; c += 8) {
        const len = headers[c + 5] | (headers[c + 6] << 8) | (headers[c + 7] << 16);
        parts.push(headers.subarray(c, c + 8), file.slice(at, at + len));
        at += len;
      }
    }
    const lastBlock = Math.min(total, (k + 1) * perBody) - 1;
    const crc = (await crcDone[lastBlock]).crc;
    if (body === "copy") {
      for (let i = k * perBody; i <= lastBlock; i++) parts.push((await crcDone[i]).blob);
    }
    while (inflight >= config.inflight) await new Promise((resolve) => waiting.push(resolve));
    inflight++;
    try {
      const body = new Blob(parts);
      const crcHex = Array.from(crc, (b) => b.toString(16).padStart(2, "0")).join("");
      const r = await fetch(`/_sink?mode=combined&crc=${crcHex}`, { method: "PUT", body });
      if (!r.ok) throw new Error(`PUT body ${k}: HTTP ${r.status}`);
      await r.arrayBuffer();
      sent += body.size;
    } finally {
      inflight--;
      waiting.shift()?.();
    }
  };
  const t0 = epoch();
  await lanes(total, slots, async (i, slot) => {
    const start = i * block, end = Math.min(file.size, start + block);
    const worker = workers[i % workers.length];
    const copy = body === "copy";
    scanned[i] = worker.call({ op: "cblock", blob: file, start, end, slot, slots,
                               blockBytes: block, copy });
    const last = i === total - 1;
    shaDone[i] = (async () => {
      const state = i ? await shaDone[i - 1] : SHA256_IV;
      await scanned[i];
      const answer = await worker.call({ op: "csha", slot, length: end - start, state,
                                         ...(last ? { total: file.size } : {}) });
      if (last) digest = answer.digest;
      return answer.state;
    })();
    crcDone[i] = (async () => {
      const crc = i % perBody ? (await crcDone[i - 1]).crc : new Uint8Array(8);
      const { headers } = await scanned[i];
      return worker.call({ op: "ccrc", slot, headers, crc, copy });
    })();
    if (i % perBody === perBody - 1 || last) sends.push(send(Math.floor(i / perBody)));
    await Promise.all([shaDone[i], crcDone[i]]);
  });
  await Promise.all(sends);
  const t1 = epoch();
  for (const w of workers) w.terminate();
  if (sends.length !== bodies) throw new Error(`combined: ${sends.length} of ${bodies} bodies`);
  return { span: [t0, t1], bytes: file.size, sent, sha256: digest };
}

const SHA256_IV = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);

/** 2. Upload bodies to the sink, `inflight` at a time, by one mechanism. */
async function sendPhase(mode, config, source, file) {
  const body = config.bodyMib * MIB;
  const count = Math.round(config.sizeMib / config.bodyMib);
  const url = `/_sink?mode=${mode}`;
  const inflight = config.inflight;
  let t0, t1;
  if (mode === "hold") {
    // today's upload: the page copies each body out of its (wasm) memory into one reused
    // staging buffer, hands it to a worker of its own (started ahead) that makes it a Blob,
    // one handover at a time; the worker sends it and is terminated after
    let staging = new ArrayBuffer(body);
    let ahead = new FloorWorker();
    let handover = Promise.resolve();
    t0 = epoch();
    await lanes(count, inflight, async () => {
      const turn = handover.then(async () => {
        const worker = ahead;
        ahead = new FloorWorker();
        new Uint8Array(staging).set(source);
        const held = await worker.call({ op: "hold", buffer: staging, length: body }, [staging],
                                       "held");
        staging = held.buffer;
        return worker;
      });
      handover = turn.catch(() => {});
      const worker = await turn;
      try { await worker.call({ op: "send", url }); } finally { worker.terminate(); }
    });
    t1 = epoch();
    ahead.terminate();
  } else if (mode === "workeru8") {
    // a filled buffer per lane transferred to a long-lived worker that PUTs it as a
    // Uint8Array and transfers it back: no copy on the page, no Blob
    const workers = Array.from({ length: inflight }, () => new FloorWorker());
    const buffers = Array.from({ length: inflight }, () => source.slice().buffer);
    await Promise.all(workers.map((w) => w.call({ op: "ping" })));
    t0 = epoch();
    await lanes(count, inflight, async (_, lane) => {
      const answer = await workers[lane].call({ op: "sendu8", url, buffer: buffers[lane],
                                                length: body }, [buffers[lane]]);
      buffers[lane] = answer.buffer;
    });
    t1 = epoch();
    for (const w of workers) w.terminate();
  } else if (mode === "fileblob") {
    // the File's own bytes as the body (a slice): nothing copied in the renderer; the
    // browser and network processes read them
    t0 = epoch();
    await lanes(count, inflight, async (i) => {
      const start = (i * body) % Math.max(body, file.size - body + 1);
      const r = await fetch(url, { method: "PUT", body: file.slice(start, start + body) });
      await r.arrayBuffer();
    });
    t1 = epoch();
  } else if (mode === "u8" || mode === "xhr") {
    const buffers = Array.from({ length: inflight }, () => source.slice());
    t0 = epoch();
    await lanes(count, inflight, async (_, lane) => {
      if (mode === "u8") {
        const r = await fetch(url, { method: "PUT", body: buffers[lane] });
        await r.arrayBuffer();
        return;
      }
      await new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        xhr.open("PUT", url);
        xhr.onload = resolve;
        xhr.onerror = () => reject(new Error("XMLHttpRequest failed"));
        xhr.send(buffers[lane]);
      });
    });
    t1 = epoch();
  } else {
    throw new Error(`unknown send mode ${mode}`);
  }
  return { span: [t0, t1], bytes: count * body };
}

/** 3. GET responses of getMib from the source, `inflight` at a time, each read by a worker
 *  of its own (one BYOB body per worker) and transferred to the page in 1 MiB buffers that
 *  go back for reuse; "discard": nothing else; "blob": the pieces made into 32 MiB Blobs
 *  (one copy, as downloadFile's), one Blob of the whole, read back to its end. */
async function receivePhase(mode, config) {
  const piece = config.getMib * MIB;
  const count = Math.round(config.sizeMib / config.getMib);
  const inflight = config.inflight;
  const parts = Array.from({ length: count }, () => []);
  const pending = new Map(); // id -> {index, chunks, bytes}
  const workers = [];
  const onChunk = (lane) => (id, msg) => {
    const worker = workers[lane];
    if (mode === "discard") { worker.post({ op: "give", buffers: [msg.chunk] }, [msg.chunk]); return; }
    const job = pending.get(`${lane}:${id}`);
    job.chunks.push(new Uint8Array(msg.chunk, 0, msg.length));
    job.bytes += msg.length;
    if (job.bytes >= 32 * MIB) flush(worker, job);
  };
  const flush = (worker, job) => {
    if (!job.chunks.length) return;
    parts[job.index].push(new Blob(job.chunks));
    const buffers = job.chunks.map((c) => c.buffer);
    worker.post({ op: "give", buffers }, buffers);
    job.chunks = [];
    job.bytes = 0;
  };
  for (let lane = 0; lane < inflight; lane++) workers.push(new FloorWorker(onChunk(lane)));
  await Promise.all(workers.map((w) => w.call({ op: "ping" })));
  if (mode === "respblob") return receiveAsBlobs(config, count, piece, workers);
  if (mode.startsWith("wblob") || mode.startsWith("wsplit") || mode === "wstream") {
    return receiveWorkerBlobs(mode, count, piece, workers, config);
  }
  const t0 = epoch();
  let received = 0;
  await lanes(count, inflight, async (i, lane) => {
    const worker = workers[lane];
    const id = worker.nextId; // the id call() gives this request
    const job = { index: i, chunks: [], bytes: 0 };
    pending.set(`${lane}:${id}`, job);
    const answer = await worker.call({ op: "get", url: `/_source?bytes=${piece}&i=${i}` });
    received += answer.bytes;
    if (mode === "blob") flush(worker, job);
    pending.delete(`${lane}:${id}`);
  });
  let bytes = received;
  if (mode === "blob") bytes = await drain(new Blob(parts.flat()));
  const t1 = epoch();
  for (const w of workers) w.terminate();
  if (received !== count * piece || bytes !== received) {
    throw new Error(`receive ${mode}: ${received} / ${bytes} bytes of ${count * piece}`);
  }
  return { span: [t0, t1], bytes: received };
}

/** 3''. "wblob<KiB>" / "wsplit<KiB>": each body copied by its worker into a 32 MiB segment of
 *  wasm memory and each full segment made a Blob there (web/xet_worker.mjs's RangeDecoder
 *  without the decoding): wblob, Blobs of at most <KiB> each; wsplit, one Blob per segment
 *  made of <KiB>-byte views. "wstream": each body one Blob, new Response(stream).blob() of
 *  views of a ring of wasm memory. The page gets the Blobs; one Blob of all read back to
 *  its end. The bodies in flight go to config.receiveWorkers workers (0: one each). */
async function receiveWorkerBlobs(mode, count, piece, workers, config) {
  const part = Number(mode.replace(/^\D+/, "")) << 10;
  const split = mode.startsWith("wsplit");
  const op = mode === "wstream" ? "getstream" : "getblob";
  const blobs = new Array(count);
  const t0 = epoch();
  let received = 0;
  await lanes(count, config.inflight, async (i, lane) => {
    const worker = workers[lane % (config.receiveWorkers || workers.length)];
    const answer = await worker.call({ op, url: `/_source?bytes=${piece}&i=${i}`, part, split,
                                       spinUs: config.workerSpinUs ?? 0 });
    blobs[i] = answer.blobs;
    received += answer.bytes;
  });
  const bytes = await drain(new Blob(blobs.flat()));
  const t1 = epoch();
  // (terminated a second later: bench/thread_faults.py samples every 0.25 s and sees the
  // workers' threads' counters at the span's end only while they live)
  setTimeout(() => { for (const w of workers) w.terminate(); }, 1000);
  if (received !== count * piece || bytes !== received) {
    throw new Error(`receive ${mode}: ${received} / ${bytes} bytes of ${count * piece}`);
  }
  // the first and the last body's bytes, for bench/floor.py to check (after the span)
  const bodySha256 = [];
  for (const parts of [blobs[0], blobs[count - 1]]) {
    const digest = await crypto.subtle.digest("SHA-256", await new Blob(parts).arrayBuffer());
    bodySha256.push([...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join(""));
  }
  return { span: [t0, t1], bytes: received, bodySha256 };
}

/** 3'. "respblob": each response taken as a Blob by fetch (`response.blob()`: the body need
 *  not pass through the page), then read once in 16 MiB slices by the pool's workers into
 *  shared slots (where verification would hash it), and one Blob of the responses read
 *  back to its end: the least a verifying download into a Blob moves, if every chunk is
 *  stored raw (the result is then slices of the responses). */
async function receiveAsBlobs(config, count, piece, workers) {
  const block = config.blockMib * MIB;
  const slotBytes = block + 64;
  const sab = new SharedArrayBuffer(4 * slotBytes);
  const readers = workers.slice(0, config.workers);
  for (const w of readers) w.post({ op: "init", sab });
  const blobs = new Array(count);
  const t0 = epoch();
  let slot = 0;
  await lanes(count, config.inflight, async (i) => {
    const r = await fetch(`/_source?bytes=${piece}&i=${i}`);
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const blob = await r.blob();
    blobs[i] = blob;
    const reads = [];
    for (let start = 0, k = 0; start < blob.size; start += block, k++) {
      const dst = (slot++ % 4) * slotBytes;
      reads.push(readers[k % readers.length].call({ op: "read", blob, start,
                                                    end: Math.min(blob.size, start + block), dst }));
    }
    await Promise.all(reads);
  });
  const bytes = await drain(new Blob(blobs));
  const t1 = epoch();
  for (const w of workers) w.terminate();
  if (bytes !== count * piece) throw new Error(`receive respblob: ${bytes} of ${count * piece}`);
  return { span: [t0, t1], bytes };
}

/** 4. Single-thread kernel rates (bench/kernels_raw.mjs) on this page's thread. */
async function kernelPhase(config, wasm) {
  const t0 = epoch();
  const gbps = await kernelOnly(wasm, config.kernelMib, config.kernelRepeat);
  return { span: [t0, epoch()], bytes: 0, gbps };
}

/** WebCrypto's one-shot SHA-256 of a buffer (no streaming API: shown for comparison). */
async function webcryptoPhase(config) {
  const data = randomBuffer(config.webcryptoMib * MIB);
  await crypto.subtle.digest("SHA-256", data.subarray(0, MIB));
  const t0 = epoch();
  let best = Infinity;
  for (let r = 0; r < 2; r++) {
    const t = performance.now();
    await crypto.subtle.digest("SHA-256", data);
    best = Math.min(best, performance.now() - t);
  }
  return { span: [t0, epoch()], bytes: 2 * data.length,
           gbps: { sha256_webcrypto: data.length / (best / 1000) / 1e9 } };
}

export async function runFloor(config, status, report) {
  const workers = config.workers || navigator.hardwareConcurrency;
  config = { ...config, workers };
  status("loading the file");
  const r = await fetch(config.dataUrl);
  if (!r.ok) throw new Error(`${config.dataUrl}: HTTP ${r.status}`);
  const file = new File([await r.blob()], "model.bin");
  config.sizeMib = Math.floor(file.size / MIB);
  const wasm = await (await fetch("/_kernels/xet_kernels.wasm")).arrayBuffer();
  const module = await WebAssembly.compile(wasm);
  const source = randomBuffer(config.bodyMib * MIB);
  await report("loaded", {});
  await pause(config.settleMs);
  const runs = [];
  const timed = async (phase, mode, rep, fn) => {
    status(`${phase} ${mode} (run ${rep + 1})`);
    const t = performance.now();
    const out = await fn();
    runs.push({ phase, mode, rep, seconds: (performance.now() - t) / 1000, ...out });
    await pause(config.gapMs);  // let Chromium's background work of one phase end
  };
  const on = (part) => !config.parts || config.parts.includes(part);
  for (let rep = 0; rep < config.repeat; rep++) {
    if (on("read")) await timed("read", "slices", rep, () => readPhase(file, config));
    if (on("hashfile")) await timed("hashfile", "workers", rep, () => scanHashPhase(file, config, module));
    for (const body of on("combined") ? (rep % 2 ? [...config.combinedBodies].reverse() : config.combinedBodies) : []) {
      const mode = body === "records" ? "combined" : `combined_${body}`;
      await timed("upload", mode, rep, () => combinedPhase(file, config, module, body));
    }
    const modes = rep % 2 ? [...config.sendModes].reverse() : config.sendModes;
    if (on("send")) {
      for (const mode of modes) await timed("send", mode, rep, () => sendPhase(mode, config, source, file));
    }
    const receive = [...(config.receiveModes ?? ["discard", "blob", "respblob"])];
    for (const mode of on("receive") ? (rep % 2 ? receive.reverse() : receive) : []) {
      await timed("receive", mode, rep, () => receivePhase(mode, config));
    }
    if (on("kernels")) await timed("kernels", "raw", rep, () => kernelPhase(config, wasm));
    if (on("webcrypto")) await timed("webcrypto", "sha256", rep, () => webcryptoPhase(config));
  }
  return { size: file.size, workers, hardwareConcurrency: navigator.hardwareConcurrency,
           crossOriginIsolated, userAgent: navigator.userAgent, runs };
}
