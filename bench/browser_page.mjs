// Measurements run inside the bench page (see bench/browser.py for what is compared).
import { loadXet, fetchToken, TokenEndpointRefresher } from "/xet_pyodide.js";
import { createChunker, nextBlock, finalize, fileHash, hashToHex } from "@huggingface/xetchunk-wasm";
import { profiled } from "/bench/py_profile.mjs";

const MIB = 1 << 20;

async function timed(fn) {
  const t0 = performance.now();
  const value = await fn();
  return { seconds: (performance.now() - t0) / 1000, value };
}

async function best(repeat, fn) {
  let out = null;
  for (let i = 0; i < repeat; i++) {
    const run = await timed(fn);
    if (out === null || run.seconds < out.seconds) out = run;
  }
  return out;
}

/** The JS peer: @huggingface/xetchunk-wasm over the same Blob, read in the same blocks. */
async function xetchunkHash(blob, blockSize) {
  const chunker = createChunker();
  const chunks = [];
  for (let pos = 0; pos < blob.size; pos += blockSize) {
    const block = new Uint8Array(await blob.slice(pos, pos + blockSize).arrayBuffer());
    for (const c of nextBlock(chunker, block)) chunks.push(c);
  }
  const last = finalize(chunker);
  if (last) chunks.push(last);
  return { fileHash: hashToHex(fileHash(chunks)), chunks: chunks.length };
}

/** Only reading the Blob, in the hashing workers' slices, split between `workers` workers:
 * the ceiling of any chunk+hash of it in this browser on this machine. */
async function blobReadOnly(blob, blockSize, workers) {
  const pool = Array.from({ length: workers }, () =>
    new Worker("/bench/blob_read_worker.mjs", { type: "module" }));
  try {
    const blocks = Math.ceil(blob.size / blockSize);
    const results = await Promise.all(pool.map((w, i) => new Promise((resolve, reject) => {
      w.onmessage = (e) => (e.data.error ? reject(new Error(e.data.error)) : resolve(e.data.bytes));
      const from = Math.floor((blocks * i) / workers) * blockSize;
      const to = Math.min(blob.size, Math.floor((blocks * (i + 1)) / workers) * blockSize);
      w.postMessage({ blob, from, to, step: blockSize });
    })));
    const bytes = results.reduce((a, b) => a + b, 0);
    if (bytes !== blob.size) throw new Error(`read ${bytes} of ${blob.size} bytes`);
    return bytes;
  } finally {
    for (const w of pool) w.terminate();
  }
}

async function session(xet, config) {
  const tokenUrl = `${config.cas}/api/models/bench/repo/xet-write-token/main`;
  const headers = { Authorization: `Bearer ${config.secret}` };
  const token = await fetchToken(tokenUrl, headers);
  return new xet.XetSession(config.cas, token, new TokenEndpointRefresher(tokenUrl, headers));
}

async function upload(xet, config, blob, name) {
  const s = await session(xet, config);
  const phases = [];
  const epoch = () => (performance.timeOrigin + performance.now()) / 1000;  // bench/_procs.py
  const span = [epoch()];
  const { value: run, profile } = await profiled(xet.pyodide, config.profile, () =>
    timed(async () => {
      const file = await s.uploadFile(blob, { name });
      const commit = await s.finalize({ onProgress: (e) => phases.push(e.phase) });
      return { file, metrics: commit.metrics };
    }));
  span.push(epoch());
  await s.close();
  return { ...run, phases: [...new Set(phases)], profile, span };
}

async function throughput(xet, config, status) {
  status("fetching the data file");
  const blob = await (await fetch(config.dataUrl)).blob();
  const small = blob.slice(0, 32 * MIB);
  await xet.hashFile(small); // warm-up (first-call costs, lazy imports)
  await xetchunkHash(small, config.blockSize);
  status("hashing (xet_pyodide)");
  const ours = await best(config.repeat, () => xet.hashFile(blob, { blockSize: config.blockSize }));
  status("reading the Blob only (ceiling)");
  const readOnly = await best(config.repeat, () => blobReadOnly(blob, config.blockSize,
                                                                Math.max(1, xet.workers)));
  status("hashing (@huggingface/xetchunk-wasm)");
  const peer = await best(1, () => xetchunkHash(blob, config.blockSize));
  status("uploading");
  const up = await upload(xet, config, blob, "bench.bin");
  return {
    size: blob.size,
    workers: xet.workers,
    sha256Worker: xet.sha256Worker,
    crossOriginIsolated: xet.crossOriginIsolated,
    userAgent: navigator.userAgent,
    ours: { seconds: ours.seconds, ...ours.value },
    xetchunk: { seconds: peer.seconds, ...peer.value },
    blobReadOnly: { seconds: readOnly.seconds },
    upload: { seconds: up.seconds, phases: up.phases, profile: up.profile, span: up.span,
              ...up.value },
  };
}

async function memory(xet, config, status) {
  // NEW data: a disk-backed File of random bytes, chosen in the page's <input type=file> by
  // bench/browser.py through Playwright (a fresh context: an in-memory Blob of that size could
  // not even exist there, Chromium caps Blob memory near 0.5 GiB).
  status("waiting for the file");
  const input = document.getElementById("file");
  if (!input.files.length) await new Promise((resolve) => input.addEventListener("change", resolve, { once: true }));
  const blob = input.files[0];
  await fetch("/_report/memory-start", { method: "POST", body: "{}" });
  status("uploading the big file");
  const up = await upload(xet, config, blob, "big.bin");
  const heap = xet.pyodide._module?.HEAP8?.buffer?.byteLength ?? null; // Pyodide's wasm memory
  return { size: blob.size, distinctBytes: blob.size, workers: xet.workers, pyodideHeapBytes: heap,
           upload: { seconds: up.seconds, ...up.value } };
}

export async function runBench(config, status) {
  status("loading xet_pyodide");
  const xet = await loadXet({ workers: config.workers ?? undefined,
                              sha256Worker: config.sha256Worker ?? undefined });
  if (config.bodyWorkers === false) {
    // "before" of issue 24: xorb bodies as page Blobs (freed only by a garbage collection)
    xet.pyodide.runPython("from xet_pyodide.io.body_worker import set_body_worker_url\n" +
                          "set_body_worker_url(None)");
  }
  await fetch("/_report/loaded", { method: "POST", body: "{}" });
  if (config.mode === "memory") return memory(xet, config, status);
  return throughput(xet, config, status);
}
