// xet_pyodide — the JavaScript front door.
//
//   import { loadXet } from "./xet_pyodide.js";
//   const xet = await loadXet({ workers: navigator.hardwareConcurrency });
//   const session = new xet.XetSession(casUrl, tokenInfo, tokenRefresher);
//   const file = await session.uploadFile(input.files[0], { onProgress: (e) => ... });
//   const { files, metrics } = await session.finalize();
//
// This file is thin glue: Pyodide and our wheel do the work (xet_pyodide/browser.py is the
// Python side). Every Python call returns an envelope {ok, value} / {ok: false, error} that
// is turned into a value or a thrown XetError here. See docs/browser.md for the full API.

import { defaultResumeStore, IndexedDbResumeStore } from "./xet_resume.mjs";

export { IndexedDbResumeStore };

const MODULE_DIR = new URL("./", import.meta.url);

/** An error raised by xet_pyodide. `name` is the Python error type, e.g. "XetAuthError".
 *  `status`, `requestId` (X-Request-Id, or a CDN's X-Amzn-Trace-Id / X-Amz-Cf-Id) and
 *  `serverMessage` say what a support request needs; `url` never has a query (a presigned
 *  URL's signature is a credential: Python redacts it before the error gets here). */
export class XetError extends Error {
  constructor(info) {
    super(info.message);
    this.name = info.name || "XetError";
    this.status = info.status ?? null;
    this.requestId = info.requestId ?? null;
    this.serverMessage = info.serverMessage ?? null;
    this.errorCode = info.errorCode ?? null; // the Hub's X-Error-Code (xet.hub calls)
    this.url = info.url ?? null;
    this.pythonTraceback = info.pythonTraceback ?? null;
  }
}

function unwrap(envelope) {
  if (envelope && envelope.ok === false) throw new XetError(envelope.error);
  if (!envelope || envelope.ok !== true) throw new XetError({ name: "XetError", message: "unexpected reply from Python" });
  return envelope.value;
}

/** unwrap() for calls that take an AbortSignal (`options.signal`): an aborted call rejects
 *  with the signal's reason (an "AbortError" DOMException unless abort() was given one), as
 *  fetch() does. */
function unwrapAbortable(envelope, options) {
  const signal = options?.signal;
  if (envelope && envelope.ok === false && envelope.error?.name === "XetAbortedError" && signal?.aborted) {
    throw signal.reason ?? new DOMException("The operation was aborted.", "AbortError");
  }
  return unwrap(envelope);
}

function withSlash(url) {
  const s = String(url);
  return s.endsWith("/") ? s : s + "/";
}

/** A TokenInfo as the session expects it: `token()` and `exp()` (unix seconds, a bigint). */
export class TokenInfo {
  #token;
  #exp;
  #casUrl;
  constructor(token, exp, casUrl = null) {
    this.#token = String(token);
    this.#exp = BigInt(Math.trunc(Number(exp)));
    this.#casUrl = casUrl;
  }
  token() { return this.#token; }
  exp() { return this.#exp; }
  casUrl() { return this.#casUrl ?? undefined; }
}

/** `url` as errors show it: without its query and fragment (a `?ttl=`, or a signature) and
 *  without `user:password@`. */
function redactUrl(url) {
  const text = String(url);
  try {
    const u = new URL(text, globalThis.location?.href);
    u.search = "";
    u.hash = "";
    u.username = "";
    u.password = "";
    return u.href;
  } catch {
    return text.split(/[?#]/, 1)[0];
  }
}

/** What a server said about a failure: the `message` / `error` / `detail` of a JSON body, or a
 *  short excerpt of the text (never more than 200 characters). */
async function serverMessageOf(resp) {
  let text = "";
  try { text = (await resp.text()).trim(); } catch { return null; }
  if (!text) return null;
  try {
    const body = JSON.parse(text);
    for (const key of ["message", "error", "detail"]) {
      if (typeof body?.[key] === "string" && body[key]) return body[key].slice(0, 200);
    }
  } catch { /* not JSON */ }
  return text.replace(/\s+/g, " ").slice(0, 200);
}

const REQUEST_ID_HEADERS = ["x-request-id", "x-amzn-trace-id", "x-amz-cf-id"];

/** GET a Hub-shaped token endpoint (`/api/{models|datasets|spaces}/{repo}/xet-{read|write}-token/{rev}`)
 *  and return a TokenInfo. `headers` usually carry `Authorization: Bearer <hub token>`.
 *  Failures throw XetError: "XetServerError" when the endpoint could not be reached (no
 *  HTTP answer: server down, wrong host or port, or a CORS / mixed-content refusal, which
 *  fetch() cannot tell apart) or answered 5xx; "XetAuthError" for 401/403 (the credentials);
 *  "XetNotFoundError" for 404 (wrong endpoint URL, repository or repository type); with
 *  the server's message in the text and in `serverMessage`. `url` never has the query. */
export async function fetchToken(url, headers = {}) {
  const shown = redactUrl(url);
  let resp;
  try {
    resp = await fetch(url, { headers });
  } catch (err) {
    if (err?.name === "AbortError") throw err;
    throw new XetError({
      name: "XetServerError", url: shown,
      message: `the token endpoint could not be reached (${err?.message ?? err}) (${shown}). ` +
        "Check the URL and that the server runs; in a web page, a server that refuses this " +
        "page's origin (CORS) or an http:// URL called from an https:// page (mixed content) " +
        "fails the same way: see the browser console",
    });
  }
  if (!resp.ok) {
    const status = resp.status;
    const serverMessage = await serverMessageOf(resp);
    const requestId = REQUEST_ID_HEADERS.map((h) => resp.headers.get(h)).find(Boolean) ?? null;
    let name = "XetServerError";
    let what = `the token endpoint failed`;
    if (status === 401 || status === 403) {
      name = "XetAuthError";
      what = status === 401 ? "the token endpoint refused the credentials (missing or wrong token)"
                            : "the token endpoint refused access to this repository";
    } else if (status === 404) {
      name = "XetNotFoundError";
      what = "no token endpoint at this URL: wrong server URL, repository or repository type";
    } else if (status < 500) {
      what = "the token endpoint refused the request";
    }
    const said = serverMessage ? `: ${serverMessage}` : "";
    throw new XetError({ name, status, url: shown, serverMessage, requestId,
                         message: `${what}${said} (HTTP ${status}, ${shown})` });
  }
  const body = await resp.json();
  return new TokenInfo(body.accessToken, body.exp, body.casUrl ?? null);
}

/** A TokenRefresher whose `refreshToken()` fetches a token endpoint (see fetchToken). The
 *  headers (they hold the Hub token) are private: `console.log(refresher)` and
 *  `JSON.stringify` do not show them; `url` is shown without its query. */
export class TokenEndpointRefresher {
  #url;
  #headers;
  constructor(url, headers = {}) {
    this.#url = url;
    this.#headers = { ...headers };
    this.calls = 0;
  }
  /** The endpoint, without its query. */
  get url() { return redactUrl(this.#url); }
  async refreshToken() {
    this.calls += 1;
    return fetchToken(this.#url, this.#headers);
  }
}

function pyOptions(options) {
  // Plain object copy: Python reads attributes; undefined/null mean "default".
  return Object.assign({}, options ?? {});
}

/** A ReadableStream over a Python download reader: `open()` resolves to the envelope of the
 *  reader (or of null: an empty stream), `py` has `read_download(reader)` and
 *  `cancel_download(reader)`. Pull-driven (one piece ahead); `signal` errors the stream with
 *  its reason and stops the download's fetches. */
function pythonDownloadStream(py, open, signal) {
  let reader = null;
  let onAbort = null;
  const detach = () => {
    if (onAbort) signal.removeEventListener("abort", onAbort);
    onAbort = null;
  };
  const stop = async () => { // the download's fetches end; the stream is errored or cancelled
    detach();
    if (reader) {
      const r = reader;
      reader = null;
      try {
        unwrap(await py.cancel_download(r));
      } finally {
        r.destroy();
      }
    }
  };
  return new ReadableStream({
    async start(controller) {
      const opened = unwrap(await open()); // opening fetches nothing yet
      if (opened == null) { controller.close(); return; }
      reader = opened;
      if (!signal) return;
      if (signal.aborted) { // before or while the download opened
        await stop();
        throw signal.reason;
      }
      onAbort = () => {
        controller.error(signal.reason);
        stop().catch(() => {});
      };
      signal.addEventListener("abort", onAbort);
    },
    async pull(controller) {
      const r = reader;
      if (!r) return;
      let piece;
      try {
        piece = unwrap(await py.read_download(r));
      } catch (err) { // the stream errors with it; the download is over
        detach();
        if (reader === r) {
          reader = null;
          r.destroy();
        }
        throw err;
      }
      if (reader !== r) return; // cancelled or aborted meanwhile
      if (piece == null) {
        detach();
        reader = null;
        r.destroy();
        controller.close();
      } else {
        controller.enqueue(piece);
      }
    },
    async cancel() {
      await stop();
    },
  }, { highWaterMark: 1 });
}

class SessionBase {
  #py;
  #closed = false;
  constructor(core, casEndpoint, tokenInfo, tokenRefresher, options) {
    // undefined (not null) reaches Python as None
    const pyOpts = pyOptions(options);
    // Upload resume (docs/upload.md, "Resuming"): on by default, in this origin's IndexedDB;
    // `resume: false` turns it off, a store object ({read, append, replace, remove, sweep})
    // replaces it.
    if (pyOpts.resume === undefined || pyOpts.resume === true) {
      pyOpts.resume = defaultResumeStore() ?? false;
    }
    const made = core.session(casEndpoint ?? undefined, tokenInfo ?? undefined,
                              tokenRefresher ?? undefined, pyOpts);
    if (made && made.ok === false) throw new XetError(made.error);
    this.#py = made;
  }

  #live() {
    if (this.#closed) throw new XetError({ name: "XetError", message: "this XetSession is closed" });
    return this.#py;
  }

  /** Upload a File/Blob, read in bounded blocks. Resolves to {name, fileHash, fileSize, sha256}. */
  async uploadFile(fileOrBlob, options = {}) {
    return unwrapAbortable(await this.#live().upload_file(fileOrBlob, pyOptions(options)), options);
  }

  /** Upload bytes held in memory (Uint8Array or ArrayBuffer). */
  async uploadBytes(bytes, options = {}) {
    return unwrapAbortable(await this.#live().upload_bytes(bytes, pyOptions(options)), options);
  }

  /** Upload the xorbs still pending, then the shard registering every file uploaded since the
   *  last finalize. Resolves to {files: [...], metrics: {...}}. The session stays usable.
   *  `signal`: aborting while xorbs still upload drops this batch (like abort(): nothing is
   *  registered, re-upload the files) and rejects with `signal.reason`; once the shard is being
   *  sent, an abort is ignored and finalize() resolves as usual. */
  async finalize(options = {}) {
    return unwrapAbortable(await this.#live().finalize(pyOptions(options)), options);
  }

  /** Drop the files uploaded since the last finalize (no shard is sent). */
  async abort() {
    return unwrap(await this.#live().abort());
  }

  /** Download a file (or `range: {start, end}` of it, end exclusive) into a Blob.
   *  Options: `range`, `onProgress` ({phase, bytesDone, bytesTotal, bytesFetched}), `type`
   *  (the Blob's MIME type), `maxBlobBytes` (default 256 MiB: a larger download rejects with
   *  XetBlobLimitError before it starts; use downloadStream). A full download is verified
   *  against the file hash (a mismatch rejects with XetIntegrityError); see docs/download.md
   *  for ranges. */
  async downloadToBlob(fileHash, size, options = {}) {
    return unwrapAbortable(await this.#live().download_to_blob(fileHash, size, pyOptions(options)),
                           options);
  }

  /** Download as a ReadableStream of Uint8Array pieces of `blockSize` bytes (default 8 MiB;
   *  pull-driven: bounded memory). Same `range`/`onProgress` options as downloadToBlob; the
   *  last piece of a full download is only enqueued once the file hash matched. */
  downloadStream(fileHash, size, options = {}) {
    const py = this.#live();
    const pyOpts = pyOptions(options);
    delete pyOpts.signal; // handled by the stream
    return pythonDownloadStream(py, () => py.open_download(fileHash, size, pyOpts), options?.signal);
  }

  /** Abort pending work and release the session. */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    try {
      unwrap(await this.#py.close());
    } finally {
      this.#py.destroy();
    }
  }
}

/** The files of an uploadFiles() call as Python reads them: {path, content: Blob}. A `File`
 *  goes in under its name; ArrayBuffers and typed arrays become Blobs. */
function hubFiles(files) {
  if (!Array.isArray(files)) throw new TypeError("uploadFiles: `files` must be an array");
  return files.map((f, i) => {
    if (f instanceof Blob && !("path" in f)) {
      if (!f.name) throw new TypeError(`uploadFiles: files[${i}] is a Blob without a name: pass {path, content}`);
      return { path: f.name, content: f };
    }
    const content = f?.content;
    if (typeof f?.path !== "string" || !f.path) throw new TypeError(`uploadFiles: files[${i}] needs a path`);
    if (content instanceof Blob) return { path: f.path, content };
    if (content instanceof ArrayBuffer || ArrayBuffer.isView(content)) return { path: f.path, content: new Blob([content]) };
    throw new TypeError(`uploadFiles: files[${i}].content must be a Blob, File, ArrayBuffer or typed array`);
  });
}

/** `xet.hub`: Hub repositories through Xet, shaped like @huggingface/hub's functions (each
 *  takes `{hubUrl, accessToken, repo, ...}`; `repo` is "namespace/name" or {type, name}).
 *  Failures throw XetError (name "XetHubConflictError", "XetHubNotFoundError", ... with
 *  status and errorCode). See docs/hub.md. */
function hubApi(core) {
  return {
    /** Commit files to a branch: preupload, Xet upload (dedup, workers, sha256 in the same
     *  pass), NDJSON commit. Resolves to {commitOid, commitUrl, committed, pullRequestUrl,
     *  files: [{path, xetHash, sha256, size, uploaded, mode}], metrics}. `signal`: an abort
     *  before the commit is sent leaves the repository unchanged and rejects with its reason;
     *  once the commit is sent it is ignored. */
    async uploadFiles(params) {
      const options = pyOptions(params);
      options.files = hubFiles(params?.files);
      // upload resume, as for XetSession: this origin's IndexedDB unless `resume: false`
      if (options.resume === undefined || options.resume === true) {
        options.resume = defaultResumeStore() ?? false;
      }
      return unwrapAbortable(await core().upload_files(options), params);
    },
    /** A verified Blob of the file (or `range: {start, end}` of it, end exclusive), or null
     *  when the repository has no such file. Options: revision, range, onProgress, type, signal. */
    async downloadFile(params) {
      return unwrapAbortable(await core().download_file(pyOptions(params)), params) ?? null;
    },
    /** Like downloadFile, as a ReadableStream of Uint8Array pieces (`blockSize` bytes, default
     *  8 MiB), or null. The last piece of a full download comes only once it is verified. */
    async downloadFileStream(params) {
      const py = core();
      const options = pyOptions(params);
      delete options.signal; // handled by the stream
      const opened = unwrap(await py.open_download(options));
      if (opened == null) return null;
      return pythonDownloadStream(py, async () => ({ ok: true, value: opened }), params?.signal);
    },
    /** The repository's tree entries ({type, path, size, oid, lfs?, xetHash?, lastCommit?}):
     *  an async iterator, as @huggingface/hub's listFiles. Options: revision, path, recursive, expand. */
    async *listFiles(params) {
      yield* unwrap(await core().list_files(pyOptions(params)));
    },
    /** Create a repository: {repoUrl, id}. Options: private or visibility, existOk. */
    async createRepo(params) {
      return unwrap(await core().create_repo(pyOptions(params)));
    },
  };
}

/**
 * Load Pyodide, install the xet_pyodide wheel, load the kernels and start the hashing workers.
 *
 * @param {object} [options]
 * @param {string|URL} [options.baseUrl]  where `pyodide/` lives (default: this module's directory)
 * @param {number} [options.workers]      hashing workers (default navigator.hardwareConcurrency; 0 = none)
 * @param {boolean} [options.sha256Worker] compute uploads' SHA-256 in a worker of its own, which
 *                                         reads each File again (default off: the pool's workers
 *                                         chain it from the blocks they read; docs/browser.md)
 * @param {object} [options.pyodideOptions] extra loadPyodide() options (stdout, stderr, ...)
 */
export async function loadXet({ baseUrl, workers, sha256Worker, pyodideOptions } = {}) {
  const base = new URL(withSlash(baseUrl ?? MODULE_DIR), location.href);
  const pyBase = new URL("pyodide/", base).href;
  const { loadPyodide } = await import(pyBase + "pyodide.mjs");
  const infoResp = await fetch(pyBase + "xet_pyodide_wheel.json");
  if (!infoResp.ok) throw new XetError({ name: "XetError", message: `cannot fetch ${pyBase}xet_pyodide_wheel.json (HTTP ${infoResp.status})` });
  const info = await infoResp.json();
  const pyodide = await loadPyodide({
    indexURL: pyBase,
    lockFileURL: pyBase + "pyodide-lock.json", // absolute: package URLs are resolved against it
    packages: ["micropip"],
    ...(pyodideOptions ?? {}),
  });
  const micropip = pyodide.pyimport("micropip");
  await micropip.install(new URL(info.wheel, pyBase).href);
  micropip.destroy();
  const browser = pyodide.pyimport("xet_pyodide.browser");
  const workerUrl = new URL("xet_worker.mjs", MODULE_DIR).href;
  const core = await browser.start(workerUrl, workers ?? undefined, sha256Worker ?? undefined);
  browser.destroy();
  const state = core.info();
  const hubCore = core.hub;
  let closed = false;
  const live = () => {
    if (closed) {
      throw new XetError({ name: "XetError", message: "this xet_pyodide instance is closed (close() was called): load a new one with loadXet()" });
    }
    return core;
  };

  class XetSession extends SessionBase {
    /**
     * @param {string|null} casEndpoint  CAS URL (may be null when tokenInfo carries casUrl)
     * @param {{token, exp}} tokenInfo    token()/exp() methods or getters; exp in unix seconds
     * @param {{refreshToken(): Promise}} [tokenRefresher]
     * @param {{onProgress?: Function, blockSize?: number}} [options]
     */
    constructor(casEndpoint, tokenInfo, tokenRefresher, options) {
      super(live(), casEndpoint, tokenInfo, tokenRefresher, options);
    }
  }

  return {
    XetSession,
    pyodide,
    workers: state.workers,
    sha256Worker: state.sha256Worker,
    crossOriginIsolated: state.crossOriginIsolated,
    wheel: info.wheel,
    /** Xet file hash of a File/Blob without uploading: {fileHash, fileSize, sha256, chunks}. */
    async hashFile(fileOrBlob, options = {}) {
      return unwrapAbortable(await live().hash_file(fileOrBlob, pyOptions(options)), options);
    },
    /** Hub repositories (uploadFiles, downloadFile, downloadFileStream, listFiles, createRepo). */
    hub: hubApi(() => { live(); return hubCore; }),
    /** Stop the workers. Sessions created from this instance then reject their uploads with
     *  XetKernelError; new sessions and hashFile() throw. Calling it again does nothing. */
    close() {
      if (closed) return;
      closed = true;
      hubCore.destroy();
      core.close();
      core.destroy();
    },
  };
}
