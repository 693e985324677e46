// Measurements of bench/peers.py inside one page: @huggingface/hub and xet.hub, same File,
// each against its own fresh local Hub (no dedup across the two), uploads then downloads.
import { loadXet } from "/xet_pyodide.js";
import * as hfjs from "/_hfjs/hub.mjs";
import { drain } from "/bench/blob_drain.mjs";

const now = () => performance.now() / 1000;
/** Wall-clock seconds (as Python's time.time()): bench/peers.py finds each process's CPU
 *  between these (bench/_procs.py). */
const epoch = () => (performance.timeOrigin + performance.now()) / 1000;

async function xorbBytes(hub, secret) {
  const r = await fetch(`${hub}/_admin/stats`, { headers: { Authorization: `Bearer ${secret}` } });
  const stats = await r.json();
  return stats.xorb_bytes_received + stats.shard_bytes_received;
}

/** Read `blob` to its end (bench/blob_drain.mjs), first noting in `marks.drainAt` when the
 *  client's call had returned it (epoch seconds): the rest of the download's span is the
 *  bench's read-back, the same for every client. */
async function drained(blob, marks) {
  marks.drainAt = epoch();
  return drain(blob);
}

/** The operations of one client: create, upload the file, download it and read it fully. */
function clients(xet, cache) {
  return {
    hfjs: {
      create: (p) => hfjs.createRepo(p),
      upload: async (p, file) => (await hfjs.uploadFiles({ ...p, files: [file] })).commit.oid,
      download: async (p, path, marks = {}) => drained(await hfjs.downloadFile({ ...p, path }),
                                                       marks),
    },
    xet: {
      create: (p) => xet.hub.createRepo(p),
      upload: async (p, file, phases = {}) => {
        const t0 = now();
        const onProgress = (e) => { phases[e.phase] ??= now() - t0; };
        return (await xet.hub.uploadFiles({ ...p, files: [file], onProgress })).commitOid;
      },
      // chunkCache: "none" by default, so that no run reads what an earlier one cached;
      // a Blob as @huggingface/hub's (this profile is on disk: Chromium may spill it there)
      download: async (p, path, marks = {}) => drained(
        await xet.hub.downloadFile({ ...p, path, chunkCache: cache, maxBlobBytes: Infinity }),
        marks),
    },
  };
}

async function fileOf(url, name) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new File([await r.blob()], name);
}

/** Upload then download `file` with each client, `repeat` times (alternating which goes
 *  first), each run on its own server: config.servers[client][i]. */
async function throughput(config, xet, status) {
  const file = await fileOf(config.dataUrl, "model.bin");
  const ops = clients(xet, config.cache ?? "none");
  const runs = [];
  for (let i = 0; i < config.repeat; i++) {
    const order = i % 2 === 0 ? ["hfjs", "xet"] : ["xet", "hfjs"];
    for (const name of order) {
      const p = { hubUrl: config.servers[name][i], accessToken: config.secret,
                  repo: { type: "model", name: `bench/${name}-${i}` } };
      await ops[name].create(p);
      status(`${name} run ${i}: upload`);
      const phases = {};
      const uploadSpan = [epoch()];
      let t = now();
      const oid = await ops[name].upload(p, file, phases);
      const upload = now() - t;
      uploadSpan.push(epoch());
      status(`${name} run ${i}: download`);
      const downloadSpan = [epoch()];
      const marks = {};
      t = now();
      const bytes = await ops[name].download(p, "model.bin", marks);
      const download = now() - t;
      downloadSpan.push(epoch());
      if (bytes !== file.size) throw new Error(`${name} downloaded ${bytes} of ${file.size} bytes`);
      runs.push({ client: name, run: i, upload, download, oid, phases, uploadSpan, downloadSpan,
                  drainAt: marks.drainAt });
    }
  }
  return { size: file.size, runs };
}

/** The original, then the changed file at the same path (a second commit): seconds and bytes
 *  sent (xorbs + shards, counted by the server) of the second upload, per client. */
async function dedup(config, xet, status) {
  const original = await fileOf(config.dataUrl, "model.bin");
  const changed = await fileOf(config.changedUrl, "model.bin");
  const ops = clients(xet, config.cache ?? "none");
  const out = {};
  for (const name of ["hfjs", "xet"]) {
    const hub = config.servers[name][0];
    const p = { hubUrl: hub, accessToken: config.secret, repo: { type: "model", name: `bench/${name}-dedup` } };
    await ops[name].create(p);
    status(`${name}: original`);
    let t = now();
    await ops[name].upload(p, original);
    const first = now() - t;
    const before = await xorbBytes(hub, config.secret);
    status(`${name}: changed`);
    t = now();
    await ops[name].upload(p, changed);
    const second = now() - t;
    out[name] = { first, second, bytesSent: (await xorbBytes(hub, config.secret)) - before };
  }
  return { size: original.size, clients: out };
}

export async function runBench(config, status, report) {
  // sha256Hasher "worker": the pool's side worker digests the File (reading it a second time)
  const xet = await loadXet({ baseUrl: "/",
                             sha256Worker: config.sha256Hasher === "worker" ? true : undefined });
  // "hashlib"/"kernel": on the page (CPU levers); "pool" (the default): the pool's workers
  // chain it from the blocks they read (xet_pyodide/io/pool_sha.py)
  if (config.sha256Hasher === "hashlib" || config.sha256Hasher === "kernel") {
    xet.pyodide.runPython(`import xet_pyodide.session.sha256 as m; m.HASHER = "${config.sha256Hasher}"
import xet_pyodide.io.pool_hasher as p; p.POOL_SHA256 = False`);
  }
  await report("loaded", { workers: xet.workers });
  const work = config.mode === "dedup" ? dedup : throughput;
  const result = await work(config, xet, status);
  result.workers = xet.workers;
  result.userAgent = navigator.userAgent;
  return result;
}
