// The demo page's logic (web/index.html): upload the chosen files in one commit, show progress,
// phase and dedup statistics, then download them back and verify their SHA-256.
//
// Everything Xet-specific goes through the public API of xet_pyodide.js. `window.demo` exposes
// the state for automated runs (scripts/demo.py, tests/browser/test_demo_page.py).

import { loadXet, fetchToken, TokenEndpointRefresher } from "./xet_pyodide.js";

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

const demo = {
  // loading | ready | uploading | uploaded | verifying | verified | cancelled | error
  state: "loading",
  xet: null,
  phases: [], // distinct upload phases seen, in order
  results: null, // {files, metrics} of the last finalize()
  verified: null, // [{name, ok, sha256, size}] of the last verification
  refreshes: 0,
  error: null,
  ready: null,
  upload: () => upload(),
  verify: () => verify(),
  cancel: () => cancel(),
};

// The running upload's or verification's AbortController (the Cancel button aborts it).
let controller = null;

function begin() {
  controller = new AbortController();
  $("upload").disabled = $("verify").disabled = true;
  $("cancel").disabled = false;
  return controller.signal;
}

function end() {
  controller = null;
  $("cancel").disabled = true;
  $("upload").disabled = false;
}

function cancel() {
  controller?.abort();
}

/** An aborted call rejects with the signal's reason: a DOMException named "AbortError". */
function cancelled(err, what) {
  if (err?.name !== "AbortError") return false;
  $("phase").textContent = `${what} cancelled`;
  setState("cancelled");
  return true;
}
window.demo = demo;

function setState(state) {
  demo.state = state;
  document.body.dataset.state = state;
}

function formatBytes(n) {
  if (n == null) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(2) : v} ${units[i]}`;
}

function showError(err) {
  demo.error = { name: err?.name ?? "Error", message: String(err?.message ?? err),
                 status: err?.status ?? null, requestId: err?.requestId ?? null };
  const e = demo.error;
  const details = [e.status ? `HTTP ${e.status}` : "", e.requestId ? `request id ${e.requestId}` : ""]
    .filter(Boolean).join(", ");
  const box = $("error");
  box.textContent = `${e.name}: ${e.message}${details ? ` (${details})` : ""}`;
  box.style.display = "block";
  console.error("xet_pyodide demo:", err, err?.pythonTraceback ?? "");
  setState("error");
}

function clearError() {
  demo.error = null;
  $("error").style.display = "none";
  $("error").textContent = "";
}

// ------------------------------------------------------------------ settings and tokens

function settings() {
  return {
    cas: $("cas").value.replace(/\/+$/, ""),
    repo: $("repo").value.replace(/^\/+|\/+$/g, ""),
    repoType: $("repo-type").value,
    secret: $("secret").value,
  };
}

function tokenEndpoint(scope) {
  const s = settings();
  const ttl = params.get("ttl");
  const url = `${s.cas}/api/${s.repoType}/${s.repo}/xet-${scope}-token/main`;
  return { url: ttl ? `${url}?ttl=${encodeURIComponent(ttl)}` : url,
           headers: s.secret ? { Authorization: `Bearer ${s.secret}` } : {} };
}

class CountingRefresher extends TokenEndpointRefresher {
  async refreshToken() {
    const token = await super.refreshToken();
    demo.refreshes += 1;
    $("refreshes").textContent = String(demo.refreshes);
    return token;
  }
}

async function openSession(scope, onProgress) {
  const { url, headers } = tokenEndpoint(scope);
  const token = await fetchToken(url, headers);
  return new demo.xet.XetSession(settings().cas, token, new CountingRefresher(url, headers),
                                 onProgress ? { onProgress } : {});
}

// ------------------------------------------------------------------ the file table

let rows = [];

function cell(tr, text = "", cls = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function bar(td) {
  const p = document.createElement("progress");
  p.max = 1;
  p.value = 0;
  const label = document.createElement("span");
  label.textContent = " 0%";
  td.append(p, label);
  return { set(fraction) { p.value = fraction; label.textContent = ` ${Math.floor(fraction * 100)}%`; } };
}

function buildRows(files) {
  const body = $("file-table").tBodies[0];
  body.replaceChildren();
  rows = files.map((file) => {
    const tr = document.createElement("tr");
    cell(tr, file.name);
    cell(tr, formatBytes(file.size));
    const processing = bar(cell(tr));
    const upload = bar(cell(tr));
    const hash = cell(tr, "", "hash");
    const sha = cell(tr, "", "hash");
    const verify = cell(tr);
    body.appendChild(tr);
    return { file, processing, upload, hash, sha, verify };
  });
}

const PHASE_TEXT = {
  processing: "processing (chunking, hashing, deduplicating)",
  uploading_xorbs: "uploading xorbs",
  uploading_shard: "uploading the shard",
  validating_shard: "the server is validating the shard",
  done: "done",
};

const SHARD_PHASES = new Set(["uploading_shard", "validating_shard", "done"]);

function onProgress(event) {
  if (demo.phases[demo.phases.length - 1] !== event.phase) demo.phases.push(event.phase);
  let text = PHASE_TEXT[event.phase] ?? event.phase;
  if (event.phase === "validating_shard" && event.shardTotal) {
    text += ` (${event.shardVerified} / ${event.shardTotal})`;
  }
  $("phase").textContent = text;
  // Once the shard is on its way, finalize() ignores an abort: so does the button.
  if (SHARD_PHASES.has(event.phase)) $("cancel").disabled = true;
  event.files.forEach((f, i) => {
    const row = rows[i];
    if (!row) return;
    const size = f.size ?? row.file.size;
    const processed = size ? f.bytesProcessed / size : 1;
    row.processing.set(Math.min(1, processed));
    // Upload: share of this file's new (packed) bytes that the server has stored. A file
    // whose chunks were all deduplicated has nothing to send.
    const uploaded = f.bytesPacked ? f.bytesUploaded / f.bytesPacked : processed >= 1 ? 1 : 0;
    row.upload.set(event.phase === "done" ? 1 : Math.min(1, uploaded));
  });
}

function showMetrics(metrics, seconds) {
  const total = metrics.totalBytes;
  const saved = metrics.dedupedBytes + metrics.dedupedBytesGlobal;
  const lines = [
    ["Total bytes", formatBytes(total)],
    ["New bytes (stored in new xorbs)", formatBytes(metrics.newBytes)],
    ["Deduplicated within this upload", formatBytes(metrics.dedupedBytes)],
    ["Deduplicated against the server (global dedup)", formatBytes(metrics.dedupedBytesGlobal)],
    ["Dedup ratio", total ? `${((100 * saved) / total).toFixed(1)}%` : "n/a"],
    ["Xorb bytes uploaded (compressed)", formatBytes(metrics.xorbBytesUploaded)],
    ["Xorbs uploaded", String(metrics.xorbsUploaded)],
    ["Shard bytes uploaded", formatBytes(metrics.shardBytesUploaded)],
    ["Chunks: new / deduplicated / global", `${metrics.newChunks} / ${metrics.dedupedChunks} / ${metrics.dedupedChunksGlobal}`],
    ["Global dedup queries", String(metrics.globalDedupQueries)],
    ["Time", `${seconds.toFixed(2)} s (${(total / 1e6 / Math.max(seconds, 1e-3)).toFixed(1)} MB/s)`],
  ];
  const body = $("metrics").tBodies[0];
  body.replaceChildren();
  for (const [k, v] of lines) {
    const tr = document.createElement("tr");
    cell(tr, k);
    cell(tr, v);
    body.appendChild(tr);
  }
}

// ------------------------------------------------------------------ upload

async function upload() {
  const files = [...$("files").files];
  clearError();
  if (!files.length) {
    showError(new Error("choose one or more files first"));
    return;
  }
  const signal = begin();
  setState("uploading");
  demo.phases = [];
  demo.results = demo.verified = null;
  buildRows(files);
  const started = performance.now();
  let session = null;
  try {
    session = await openSession("write", onProgress);
    for (const [i, file] of files.entries()) {
      const r = await session.uploadFile(file, { signal });
      rows[i].hash.textContent = r.fileHash;
    }
    // Cancel still works while the last xorbs upload (nothing gets registered); the button
    // is disabled when the shard upload starts (see onProgress), as finalize() then ignores it.
    const commit = await session.finalize({ signal });
    commit.files.forEach((f, i) => {
      rows[i].hash.textContent = f.fileHash;
      rows[i].sha.textContent = f.sha256 ?? "";
      rows[i].processing.set(1);
      rows[i].upload.set(1);
    });
    showMetrics(commit.metrics, (performance.now() - started) / 1000);
    demo.results = commit;
    setState("uploaded");
  } catch (err) {
    if (!cancelled(err, "upload")) showError(err); // cancelled: nothing is registered
  } finally {
    if (session) await session.close().catch(() => {});
    end();
    $("verify").disabled = !demo.results;
  }
}

// ------------------------------------------------------------------ download back and verify

/** SHA-256 of a Blob: WebCrypto for up to 512 MiB (it needs the bytes in one buffer), our
 *  streaming hasher above that. */
async function sha256Hex(blob) {
  if (blob.size <= 512 * 1024 * 1024) {
    const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
    return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  }
  return (await demo.xet.hashFile(blob, { sha256: true })).sha256;
}

async function verify() {
  if (!demo.results) return;
  clearError();
  const signal = begin();
  setState("verifying");
  const out = [];
  let session = null;
  try {
    session = await openSession("read");
    for (const [i, f] of demo.results.files.entries()) {
      const row = rows[i];
      row.verify.textContent = "downloading…";
      row.verify.className = "";
      const blob = await session.downloadToBlob(f.fileHash, f.fileSize, { signal });
      const sha = await sha256Hex(blob);
      const ok = blob.size === f.fileSize && (f.sha256 == null || sha === f.sha256);
      row.verify.textContent = ok ? "verify OK" : `MISMATCH (sha256 ${sha})`;
      row.verify.className = ok ? "ok" : "bad";
      out.push({ name: f.name, ok, sha256: sha, size: blob.size });
    }
    demo.verified = out;
    setState("verified");
  } catch (err) {
    if (cancelled(err, "verification")) {
      rows.forEach((row) => { if (row.verify.textContent === "downloading…") row.verify.textContent = "cancelled"; });
    } else {
      showError(err);
    }
  } finally {
    if (session) await session.close().catch(() => {});
    end();
    $("verify").disabled = false;
  }
}

// ------------------------------------------------------------------ start

async function start() {
  $("cas").value = params.get("cas") ?? location.origin;
  $("repo").value = params.get("repo") ?? "demo/repo";
  $("repo-type").value = params.get("repoType") ?? "models";
  $("secret").value = params.get("secret") ?? "";
  const workers = params.has("workers") ? Number(params.get("workers")) : undefined;
  const sha256Worker = params.has("sha256Worker") ? params.get("sha256Worker") === "1" : undefined;
  const t0 = performance.now();
  const xet = await loadXet({ workers, sha256Worker });
  demo.xet = xet;
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  $("load-status").textContent =
    `xet_pyodide ready (${xet.wheel}) in ${seconds} s · ${xet.workers} hashing worker(s) · ` +
    (xet.crossOriginIsolated ? "cross-origin isolated"
                             : "NOT cross-origin isolated: hashing runs single-threaded");
  $("upload").disabled = false;
  $("upload").addEventListener("click", upload);
  $("verify").addEventListener("click", verify);
  $("cancel").addEventListener("click", cancel);
  setState("ready");
  return xet;
}

demo.ready = start().catch((err) => {
  $("load-status").textContent = "failed to load xet_pyodide";
  showError(err);
  throw err;
});
