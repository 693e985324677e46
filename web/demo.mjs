// The demo page's logic (web/index.html): a Hub repository through xet.hub. Lists its files at
// `main` (sizes, last commit), commits the chosen files in one commit (uploadFiles: Xet upload
// with dedup, then the commit; progress, retries and dedup statistics shown), downloads files
// back and verifies them (downloadFile checks the Xet hash; the page adds the SHA-256).
//
// Everything Xet-specific goes through the public API of xet_pyodide.js. `window.demo` exposes
// the state for automated runs (scripts/demo.py, tests/browser/test_demo_page.py).

import { loadXet } from "./xet_pyodide.js";

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

const demo = {
  // loading | ready | listing | uploading | uploaded | verifying | verified | downloading |
  // cancelled | error
  state: "loading",
  xet: null,
  phases: [], // distinct upload phases seen, in order
  results: null, // the last uploadFiles() result (+ seconds)
  verified: null, // [{path, ok, sha256, size}] of the last "download back and verify"
  listing: null, // the repository's files at main (listFiles entries), or [] when none
  downloads: {}, // path -> {ok, sha256, size, how} of the per-file download buttons
  retries: [], // the retry announcements of the last upload ({what, attempt, ...})
  error: null,
  ready: null,
  list: () => list(),
  upload: () => upload(),
  verify: () => verify(),
  cancel: () => cancel(),
};
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

// ------------------------------------------------------------------ busy state, errors

// The running operation's AbortController (the Cancel button aborts it).
let controller = null;
const actionButtons = () => [$("upload"), $("verify"), $("list"),
                             ...document.querySelectorAll("#repo-table button")];

function begin(state) {
  controller = new AbortController();
  for (const b of actionButtons()) b.disabled = true;
  $("cancel").disabled = false;
  clearError();
  setState(state);
  return controller.signal;
}

function end() {
  controller = null;
  $("cancel").disabled = true;
  $("upload").disabled = $("list").disabled = false;
  $("verify").disabled = !demo.results;
  for (const b of document.querySelectorAll("#repo-table button")) b.disabled = false;
}

function cancel() {
  controller?.abort();
}

/** An aborted call rejects with the signal's reason: a DOMException named "AbortError". */
function cancelled(err, what) {
  if (err?.name !== "AbortError") return false;
  setPhase(`${what} cancelled`);
  setState("cancelled");
  return true;
}

function showError(err) {
  demo.error = { name: err?.name ?? "Error", message: String(err?.message ?? err),
                 status: err?.status ?? null, requestId: err?.requestId ?? null,
                 errorCode: err?.errorCode ?? null };
  const e = demo.error;
  // Our errors' messages already end with "(HTTP 401, request id …, URL)": add only what is
  // not there yet.
  const details = [e.status && !e.message.includes(`HTTP ${e.status}`) ? `HTTP ${e.status}` : "",
                   e.requestId && !e.message.includes(e.requestId) ? `request id ${e.requestId}` : ""]
    .filter(Boolean).join(", ");
  const box = $("error");
  box.textContent = `${e.name}: ${e.message}${details ? ` (${details})` : ""}`;
  box.hidden = false;
  console.error("xet_pyodide demo:", err, err?.pythonTraceback ?? "");
  setState("error");
  box.focus();
}

function clearError() {
  demo.error = null;
  $("error").hidden = true;
  $("error").textContent = "";
}

/** The phase line is a live region: it changes only when its text does (not per byte). */
function setPhase(text) {
  if ($("phase").textContent !== text) $("phase").textContent = text;
}

// ------------------------------------------------------------------ settings

function settings() {
  const type = $("repo-type").value;
  return {
    hubUrl: $("cas").value.trim().replace(/\/+$/, ""),
    accessToken: $("secret").value || undefined,
    repo: { type: type.replace(/s$/, ""), name: $("repo").value.trim().replace(/^\/+|\/+$/g, "") },
  };
}

function checkSecret() {
  $("secret-missing").hidden = Boolean($("secret").value);
}

// ------------------------------------------------------------------ progress bars

let barCount = 0;

/** A named <progress> (its label says what it measures) with a percentage beside it. */
function bar(td, name) {
  const p = document.createElement("progress");
  p.max = 1;
  p.value = 0;
  p.id = `bar-${++barCount}`;
  p.setAttribute("aria-label", name);
  const label = document.createElement("span");
  label.textContent = " 0%";
  td.append(p, label);
  return {
    element: p,
    set(fraction) {
      const f = Math.max(0, Math.min(1, fraction));
      p.value = f;
      label.textContent = ` ${Math.floor(f * 100)}%`;
    },
  };
}

function cell(tr, text = "", cls = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

let pyUpdate = null;

/** SHA-256 and size of a ReadableStream of Uint8Arrays, hashed piece by piece (hashlib in
 *  Pyodide: WebCrypto has no streaming digest), so a multi-GiB download is never one Blob or
 *  buffer (a fresh browser profile holds only ~0.5 GiB of Blobs in memory). */
async function streamSha256(stream, keep = false) {
  const py = demo.xet.pyodide;
  pyUpdate ??= py.runPython("lambda h, piece: h.update(piece.to_memoryview())");
  const hashlib = py.pyimport("hashlib");
  const h = hashlib.sha256();
  hashlib.destroy();
  let size = 0;
  const pieces = keep ? [] : null;
  try {
    const reader = stream.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      pyUpdate(h, value);
      size += value.byteLength;
      pieces?.push(value);
    }
    return { sha: h.hexdigest(), size, pieces };
  } finally {
    h.destroy();
  }
}

// ------------------------------------------------------------------ the repository's files

function describeCommit(c) {
  if (!c) return "";
  const when = c.date ? new Date(c.date).toISOString().replace("T", " ").slice(0, 16) : "";
  return `${c.id.slice(0, 8)} ${c.title}${when ? ` (${when} UTC)` : ""}`;
}

function showListing(entries) {
  const body = $("repo-table").tBodies[0];
  body.replaceChildren();
  for (const entry of entries) {
    const tr = document.createElement("tr");
    tr.dataset.path = entry.path;
    cell(tr, entry.path);
    cell(tr, formatBytes(entry.size));
    cell(tr, describeCommit(entry.lastCommit));
    cell(tr, entry.xetHash ?? "inline (regular file)", "hash");
    const td = cell(tr);
    const button = document.createElement("button");
    button.textContent = "Download and verify";
    button.setAttribute("aria-label", `Download and verify ${entry.path}`);
    const status = document.createElement("span");
    status.className = "status";
    button.addEventListener("click", () => downloadListed(entry, td, button, status));
    td.append(button, status);
    body.appendChild(tr);
  }
}

async function list() {
  const s = settings();
  if (!s.hubUrl || !s.repo.name) return;
  begin("listing");
  $("repo-status").textContent = `listing ${s.repo.name}…`;
  try {
    const entries = [];
    for await (const e of demo.xet.hub.listFiles({ ...s, revision: "main", recursive: true, expand: true })) {
      if (e.type === "file") entries.push(e);
    }
    demo.listing = entries;
    showListing(entries);
    const head = entries.map((e) => e.lastCommit).filter(Boolean)
      .sort((a, b) => String(b.date).localeCompare(String(a.date)))[0];
    $("repo-status").textContent = entries.length
      ? `${entries.length} file(s) in ${s.repo.name} at main` + (head ? `; last commit ${describeCommit(head)}` : "")
      : `${s.repo.name} has no files yet`;
    setState("ready");
  } catch (err) {
    if (err?.errorCode === "RepoNotFound" || err?.errorCode === "RevisionNotFound") {
      demo.listing = [];
      showListing([]);
      $("repo-status").textContent = err.errorCode === "RepoNotFound"
        ? `${s.repo.name} does not exist yet: the first upload creates it`
        : `${s.repo.name} has no commit on main yet`;
      setState("ready");
    } else {
      $("repo-status").textContent = "listing failed (see the error below)";
      showError(err);
    }
  } finally {
    end();
  }
}

/** Largest file the page keeps (as a Blob, for the "save" link) after verifying it. */
const KEEP_MAX = 256 * 1024 * 1024;

/** The download button of a listed file: downloadFileStream (verified against the Xet hash,
 *  or an inline file's git blob id) hashed as it comes, our SHA-256 against the listing's LFS
 *  oid; files up to KEEP_MAX are kept for a "save" link. */
async function downloadListed(entry, td, button, status) {
  const signal = begin("downloading");
  td.querySelector(".bar")?.remove();
  const saved = td.querySelector("a");
  if (saved) {
    URL.revokeObjectURL(saved.href);
    saved.remove();
  }
  const holder = document.createElement("span");
  holder.className = "bar";
  td.insertBefore(holder, status);
  const progress = bar(holder, `Download of ${entry.path}`);
  status.textContent = " downloading…";
  status.className = "status";
  setPhase(`downloading ${entry.path}`);
  try {
    const stream = await demo.xet.hub.downloadFileStream({
      ...settings(), path: entry.path, revision: "main", signal,
      onProgress: (e) => { if (e.bytesTotal) progress.set(e.bytesDone / e.bytesTotal); },
    });
    if (stream == null) throw new Error(`${entry.path} is no longer in the repository: list again`);
    const got = await streamSha256(stream, entry.size <= KEEP_MAX);
    progress.set(1);
    const expected = entry.lfs?.oid ?? null;
    const ok = got.size === entry.size && (expected == null || got.sha === expected);
    const how = entry.xetHash ? "Xet hash and SHA-256" : "git blob id";
    demo.downloads[entry.path] = { ok, sha256: got.sha, size: got.size, how };
    status.textContent = ok ? ` verified (${how})` : ` MISMATCH (sha256 ${got.sha})`;
    status.className = `status ${ok ? "ok" : "bad"}`;
    if (ok && got.pieces) {
      const link = document.createElement("a");
      link.href = URL.createObjectURL(new Blob(got.pieces));
      link.download = entry.path.split("/").pop();
      link.textContent = " save";
      td.appendChild(link);
    }
    setPhase(`downloaded ${entry.path}`);
    setState("ready");
  } catch (err) {
    status.textContent = " failed";
    if (!cancelled(err, "download")) showError(err);
  } finally {
    end();
    if (!demo.error) button.focus();
  }
}

// ------------------------------------------------------------------ upload and commit

let rows = [];

function buildRows(files) {
  const body = $("file-table").tBodies[0];
  body.replaceChildren();
  rows = files.map((file) => {
    const tr = document.createElement("tr");
    cell(tr, file.name);
    cell(tr, formatBytes(file.size));
    const processing = bar(cell(tr), `Processing of ${file.name}`);
    const upload = bar(cell(tr), `Upload of ${file.name}`);
    const hash = cell(tr, "", "hash");
    const sha = cell(tr, "", "hash");
    const verify = cell(tr);
    body.appendChild(tr);
    return { file, processing, upload, hash, sha, verify, verifyBar: null };
  });
}

const PHASE_TEXT = {
  preuploading: "asking the Hub how to send each file (preupload)",
  hashing: "hashing the files the repository already has (SHA-256)",
  processing: "processing (chunking, hashing, deduplicating)",
  uploading_xorbs: "uploading xorbs",
  uploading_shard: "uploading the shard",
  validating_shard: "the server is validating the shard",
  committing: "committing",
  done: "committed",
};

let lastPhase = null;
let transferredAtRetry = null;

function onProgress(event) {
  if (demo.phases[demo.phases.length - 1] !== event.phase) demo.phases.push(event.phase);
  lastPhase = event.phase;
  setPhase(PHASE_TEXT[event.phase] ?? event.phase);
  // The commit cannot be called back once it is sent: neither can the button.
  if (event.phase === "committing" || event.phase === "done") $("cancel").disabled = true;
  if (event.retry) {
    const r = event.retry;
    demo.retries.push(r);
    transferredAtRetry = event.bytesTransferred;
    $("retry-status").textContent =
      `${r.what}: attempt ${r.attempt} of ${r.maxAttempts} failed (${r.reason}); ` +
      `retrying in ${r.delay.toFixed(1)} s`;
  } else if (transferredAtRetry != null && event.bytesTransferred > transferredAtRetry) {
    transferredAtRetry = null; // bytes move again
    $("retry-status").textContent = "";
  }
  if (event.bytesResumed) {
    $("resume-status").textContent =
      `resumed: ${formatBytes(event.bytesResumed)} already on the server from an interrupted ` +
      "upload of this page (not sent again)";
  }
  const files = event.files ?? [];
  const packedAll = files.reduce((n, f) => n + (f.bytesPacked ?? 0), 0);
  const storedAll = files.reduce((n, f) => n + (f.bytesUploaded ?? 0), 0);
  files.forEach((f, i) => {
    const row = rows[i];
    if (!row) return;
    const size = f.size ?? row.file.size;
    const processed = size ? Math.min(1, f.bytesProcessed / size) : 1;
    row.processing.set(processed);
    // Upload (see the note under the table): of the file's size, what is processed and whose
    // new data is stored; a file without new data of its own waits for the batch's.
    let stored;
    if (f.mode === "regular") stored = event.phase === "done" ? 1 : 0;
    else if (f.bytesPacked) stored = f.bytesUploaded / f.bytesPacked;
    else stored = packedAll ? storedAll / packedAll : 1;
    row.upload.set(event.phase === "done" ? 1 : processed * stored);
  });
}

function showMetrics(metrics, seconds, totalBytes) {
  const body = $("metrics").tBodies[0];
  body.replaceChildren();
  const add = (k, v) => {
    const tr = document.createElement("tr");
    cell(tr, k);
    cell(tr, v);
    body.appendChild(tr);
  };
  if (!metrics) {
    add("No file went through Xet", "(all inline or unchanged)");
    add("Time", `${seconds.toFixed(2)} s`);
    return;
  }
  const total = metrics.totalBytes;
  const saved = metrics.dedupedBytes + metrics.dedupedBytesGlobal;
  add("Bytes through Xet", formatBytes(total));
  add("New bytes (stored in new xorbs)", formatBytes(metrics.newBytes));
  add("Deduplicated within this upload", formatBytes(metrics.dedupedBytes));
  if (metrics.bytesResumed) {
    add("… of which resumed from an interrupted upload", formatBytes(metrics.bytesResumed));
  }
  add("Deduplicated against the server (global dedup)", formatBytes(metrics.dedupedBytesGlobal));
  add("Dedup ratio", total ? `${((100 * saved) / total).toFixed(1)}%` : "n/a");
  add("Xorb bytes uploaded (compressed)", formatBytes(metrics.xorbBytesUploaded));
  add("Xorbs uploaded", String(metrics.xorbsUploaded));
  add("Shard bytes uploaded", formatBytes(metrics.shardBytesUploaded));
  add("Chunks: new / deduplicated / global", `${metrics.newChunks} / ${metrics.dedupedChunks} / ${metrics.dedupedChunksGlobal}`);
  add("Global dedup queries", String(metrics.globalDedupQueries));
  add("Time (upload and commit)", `${seconds.toFixed(2)} s (${(totalBytes / 1e6 / Math.max(seconds, 1e-3)).toFixed(1)} MB/s)`);
}

function metricsPlaceholder(text) {
  const body = $("metrics").tBodies[0];
  body.replaceChildren();
  const tr = document.createElement("tr");
  const td = cell(tr, text);
  td.colSpan = 2;
  body.appendChild(tr);
}

function showCommit(result) {
  const box = $("commit");
  box.replaceChildren();
  if (!result) return;
  const verb = result.committed ? "Committed" : "Nothing changed: the branch stays at";
  box.append(`${verb} `);
  const a = document.createElement("a");
  a.href = result.commitUrl;
  a.textContent = result.commitOid;
  a.id = "commit-link";
  box.append(a, ` (${result.files.length} file(s))`);
}

async function upload() {
  const files = [...$("files").files];
  clearError();
  if (!files.length) {
    showError(new Error("choose one or more files first"));
    return;
  }
  const signal = begin("uploading");
  // Nothing of an earlier upload stays on screen while this one runs.
  demo.phases = [];
  demo.retries = [];
  demo.results = demo.verified = null;
  lastPhase = null;
  transferredAtRetry = null;
  $("retry-status").textContent = "";
  $("resume-status").textContent = "";
  showCommit(null);
  metricsPlaceholder("upload running…");
  setPhase("starting");
  buildRows(files);
  const started = performance.now();
  const s = settings();
  try {
    await demo.xet.hub.createRepo({ ...s, existOk: true });
    const title = $("commit-title").value.trim();
    const result = await demo.xet.hub.uploadFiles({
      ...s, files, branch: "main", onProgress, signal,
      ...(title ? { commitTitle: title } : {}),
    });
    const seconds = (performance.now() - started) / 1000;
    result.files.forEach((f, i) => {
      const row = rows[i];
      if (!row) return;
      row.hash.textContent = f.xetHash ?? (f.mode === "regular" ? "inline (regular file)" : "");
      row.sha.textContent = f.sha256 ?? "";
      row.processing.set(1);
      row.upload.set(1);
    });
    demo.results = { ...result, seconds };
    showMetrics(result.metrics, seconds, files.reduce((n, f) => n + f.size, 0));
    showCommit(result);
    setPhase(result.committed ? "committed" : "nothing to commit (unchanged)");
    $("retry-status").textContent = "";
  } catch (err) {
    $("retry-status").textContent = "";
    metricsPlaceholder("the upload did not complete: no statistics");
    if (!cancelled(err, "upload")) { // cancelled: the repository is unchanged
      setPhase(`upload failed${lastPhase ? ` while ${PHASE_TEXT[lastPhase] ?? lastPhase}` : ""}`);
      showError(err);
    }
  } finally {
    end();
  }
  if (demo.results) {
    await list(); // the listing shows the new commit
    if (demo.state !== "error") {
      setState("uploaded");
      $("commit").focus(); // the commit id and link: what the user came for
    }
  } else if (demo.state === "cancelled") {
    $("upload").focus();
  }
}

// ------------------------------------------------------------------ download back and verify

async function verify() {
  const result = demo.results;
  if (!result) return;
  const signal = begin("verifying");
  const out = [];
  try {
    for (const [i, f] of result.files.entries()) {
      const row = rows[i];
      if (!row) continue;
      row.verify.replaceChildren();
      row.verify.className = "";
      const progress = bar(row.verify, `Verification of ${f.path}`);
      setPhase(`verifying: downloading ${f.path} (${i + 1} of ${result.files.length})`);
      // A stream, not a Blob: its last piece comes only once the Xet hash matched (an
      // inline file's: its git blob id), and the SHA-256 is computed as the pieces come.
      const stream = await demo.xet.hub.downloadFileStream({
        ...settings(), path: f.path, revision: result.commitOid, signal,
        onProgress: (e) => { if (e.bytesTotal) progress.set(e.bytesDone / e.bytesTotal); },
      });
      const got = stream ? await streamSha256(stream) : { sha: null, size: null };
      progress.set(1);
      const sha = got.sha;
      const ok = stream != null && got.size === f.size && (f.sha256 == null || sha === f.sha256);
      const verdict = document.createElement("span");
      verdict.textContent = ok ? " verify OK" : ` MISMATCH (sha256 ${sha})`;
      verdict.className = ok ? "ok" : "bad";
      row.verify.appendChild(verdict);
      out.push({ path: f.path, ok, sha256: sha, size: got.size });
    }
    demo.verified = out;
    const good = out.filter((v) => v.ok).length;
    setPhase(`verified: ${good} of ${out.length} file(s) match`);
    setState("verified");
  } catch (err) {
    if (cancelled(err, "verification")) {
      rows.forEach((row) => { if (!row.verify.querySelector(".ok, .bad")) row.verify.textContent = "cancelled"; });
    } else {
      setPhase("verification failed");
      showError(err);
    }
  } finally {
    end();
    if (!demo.error) $("verify").focus();
  }
}

// ------------------------------------------------------------------ start

async function start() {
  $("cas").value = params.get("hub") ?? params.get("cas") ?? location.origin;
  $("repo").value = params.get("repo") ?? "demo/repo";
  $("repo-type").value = params.get("repoType") ?? "models";
  $("secret").value = params.get("secret") ?? "";
  checkSecret();
  $("secret").addEventListener("input", checkSecret);
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
  $("upload").disabled = $("list").disabled = false;
  $("upload").addEventListener("click", upload);
  $("verify").addEventListener("click", verify);
  $("cancel").addEventListener("click", cancel);
  $("list").addEventListener("click", list);
  setState("ready");
  if ($("secret").value) await list();
  return xet;
}

demo.ready = start().catch((err) => {
  $("load-status").textContent = "failed to load xet_pyodide";
  showError(err);
  throw err;
});
