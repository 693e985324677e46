// TypeScript declarations for web/xet_pyodide.js (the JavaScript front door of xet_pyodide).
// See docs/browser.md for the behaviour behind each call.

import type { PyodideInterface } from "./pyodide/pyodide";

/** Raised by every failing call. `name` is the Python error type ("XetAuthError",
 *  "XetServerError", "XetResponseError", "XetNotFoundError", "XetReadError" (a File/Blob
 *  could not be read, e.g. changed on disk after it was chosen), "XetBlobLimitError" (a
 *  downloadToBlob over `maxBlobBytes`: use downloadStream), "XetKernelError", ...). */
export declare class XetError extends Error {
  constructor(info: { name?: string; message: string; status?: number | null;
                      requestId?: string | null; serverMessage?: string | null;
                      url?: string | null; pythonTraceback?: string | null });
  /** HTTP status of the failing request, when there was one. */
  readonly status: number | null;
  /** The id the server gave the request: X-Request-Id, or where a CDN answered,
   *  X-Amzn-Trace-Id, then X-Amz-Cf-Id (cross-origin: only if the server exposes it). */
  readonly requestId: string | null;
  /** What the server said about the failure (the `message`/`error` of a JSON body, or an
   *  excerpt of the body), when it said something. */
  readonly serverMessage: string | null;
  /** The Hub's `X-Error-Code` ("RepoNotFound", "RevisionNotFound", "EntryNotFound", ...),
   *  for errors of `xet.hub` calls ("XetHubError", "XetHubAuthError", "XetHubNotFoundError",
   *  "XetHubConflictError"). */
  readonly errorCode: string | null;
  /** The failing request's URL without its query (never a presigned URL's signature). */
  readonly url: string | null;
  /** The Python traceback, for bug reports. */
  readonly pythonTraceback: string | null;
}

/** A CAS access token. `exp` is the expiry in unix seconds. Methods or getters are accepted,
 *  `exp` may be a bigint or a number. */
export interface TokenInfoLike {
  token: string | (() => string);
  exp: bigint | number | (() => bigint | number);
  casUrl?: string | (() => string | undefined);
}

/** Called when the token expires within 30 s or was rejected (HTTP 401). */
export interface TokenRefresher {
  refreshToken(): Promise<TokenInfoLike>;
}

export declare class TokenInfo implements TokenInfoLike {
  constructor(token: string, exp: bigint | number, casUrl?: string | null);
  token(): string;
  exp(): bigint;
  casUrl(): string | undefined;
}

/** GET a Hub-shaped token endpoint (`/api/{models|datasets|spaces}/{repo}/xet-{read|write}-token/{rev}`),
 *  answering `{accessToken, exp, casUrl}`. Throws XetError with the server's message in the
 *  text and in `serverMessage`, `url` without its query: "XetAuthError" for 401/403 (the
 *  credentials), "XetNotFoundError" for 404 (wrong server URL, repository or repository type),
 *  "XetServerError" for other statuses and when the endpoint could not be reached (no HTTP
 *  answer: server down, wrong host or port, or — fetch() cannot tell them apart — a CORS or
 *  mixed-content refusal). */
export declare function fetchToken(url: string | URL, headers?: Record<string, string>): Promise<TokenInfo>;

/** A TokenRefresher that fetches a token endpoint; `calls` counts refreshes. The headers (the
 *  Hub token) are private fields: `console.log(refresher)` and `JSON.stringify` leave them out. */
export declare class TokenEndpointRefresher implements TokenRefresher {
  constructor(url: string | URL, headers?: Record<string, string>);
  /** The endpoint without its query. */
  readonly url: string;
  calls: number;
  refreshToken(): Promise<TokenInfo>;
}

/** A retry being waited for: attempt `attempt` of `maxAttempts` of `what` ("xorb upload …",
 *  "shard upload", "global dedup query", …) failed because of `reason` ("HTTP 503", "server
 *  unreachable (…)"; never a URL), and the next attempt starts in `delay` seconds. */
export interface RetryAnnouncement {
  what: string;
  attempt: number;
  maxAttempts: number;
  delay: number;
  reason: string;
}

export type UploadPhase = "processing" | "uploading_xorbs" | "uploading_shard" | "validating_shard" | "done";

export interface FileProgressCounters {
  name: string | null;
  size: number | null;
  /** Bytes of the file chunked and deduplicated so far. */
  bytesProcessed: number;
  /** Serialized xorb bytes of its new (not deduplicated) chunks so far. */
  bytesPacked: number;
  /** Of those, bytes in xorbs the server has stored. */
  bytesUploaded: number;
  /** Present (true) once the file's upload failed or was aborted: it is left out of the
   *  totals and of finalize(). */
  abandoned?: true;
}

export interface ProgressEvent {
  phase: UploadPhase;
  bytesProcessed: number;
  bytesTotal: number | null;
  /** Xorb bytes sent (or found already present) so far. */
  bytesTransferred: number;
  /** Bytes found in xorbs an earlier, interrupted upload left on the server (upload resume). */
  bytesResumed: number;
  /** While the server validates the shard (phase "validating_shard"), when it reports it. */
  shardVerified?: number;
  shardTotal?: number;
  /** Requests of this batch retried so far. */
  retries: number;
  /** Only in the event announcing a retry, emitted before its wait (a dead server would
   *  otherwise look like an upload stuck at 0 % for the whole backoff, ~20 s by default). */
  retry?: RetryAnnouncement;
}

/** Session-wide and finalize() listeners get every file. */
export interface SessionProgressEvent extends ProgressEvent {
  files: FileProgressCounters[];
}

/** uploadFile()/uploadBytes() listeners get their own file's counters. */
export interface FileProgressEvent extends ProgressEvent {
  name: string | null;
  fileSize: number | null;
  fileBytesProcessed: number;
  fileBytesPacked: number;
  fileBytesUploaded: number;
  /** Present (true) in the last event of a file whose upload failed or was aborted. */
  fileAbandoned?: true;
}

export interface UploadOptions {
  /** Name reported in results (default: File.name). */
  name?: string;
  onProgress?: (event: FileProgressEvent) => void | Promise<void>;
  /** true/absent: computed; false or "skip": left out of the shard; or a known digest
   *  (64 hex digits, 32 bytes, or a Promise of them, e.g. crypto.subtle.digest(...)). */
  sha256?: boolean | "skip" | string | Uint8Array | ArrayBuffer | Promise<ArrayBuffer | Uint8Array | string>;
  /** Stops the upload: the call rejects with `signal.reason` (as fetch() does) and the file
   *  is left out of the next finalize(); the session stays usable. A failed upload is left
   *  out the same way. */
  signal?: AbortSignal;
}

export interface FileResult {
  name: string | null;
  /** Xet file hash (64 hex digits), as hf_xet computes it. */
  fileHash: string;
  fileSize: number;
  /** Hex SHA-256, or null when skipped. */
  sha256: string | null;
}

export interface UploadMetrics {
  totalBytes: number;
  newBytes: number;
  /** Found earlier in this session. */
  dedupedBytes: number;
  /** Found on the server through global-dedup queries. */
  dedupedBytesGlobal: number;
  /** Part of dedupedBytes found in xorbs of an earlier, interrupted upload (upload resume). */
  bytesResumed: number;
  xorbBytesUploaded: number;
  shardBytesUploaded: number;
  newChunks: number;
  dedupedChunks: number;
  dedupedChunksGlobal: number;
  xorbsUploaded: number;
  shardsUploaded: number;
  globalDedupQueries: number;
  /** Xorbs of the resume state this session could use / found missing on the server. */
  resumedXorbs: number;
  resumeMissingXorbs: number;
  peakBufferedBytes: number;
}

/** Where upload resume journals live (default: IndexedDbResumeStore, this origin's
 *  IndexedDB). Every method resolves once the change is durable. */
export interface ResumeStore {
  read(name: string): Promise<Uint8Array | null>;
  append(name: string, data: Uint8Array): Promise<void>;
  replace(name: string, data: Uint8Array): Promise<void>;
  remove(name: string): Promise<void>;
  /** Delete journals not written for maxAge seconds; resolves to how many. */
  sweep(maxAge: number, now: number): Promise<number>;
}

export declare class IndexedDbResumeStore implements ResumeStore {
  constructor(dbName?: string);
  read(name: string): Promise<Uint8Array | null>;
  append(name: string, data: Uint8Array): Promise<void>;
  replace(name: string, data: Uint8Array): Promise<void>;
  remove(name: string): Promise<void>;
  sweep(maxAge: number, now: number): Promise<number>;
}

export interface CommitResult {
  files: FileResult[];
  metrics: UploadMetrics;
}

export interface DownloadOptions {
  /** Byte range of the file, end exclusive. */
  range?: { start: number; end: number } | [number, number];
  onProgress?: (event: Record<string, unknown>) => void | Promise<void>;
  /** MIME type of the resulting Blob (downloadToBlob). */
  type?: string;
  /** downloadToBlob: the largest download (or range) it accepts, default 256 MiB; larger
   *  ones reject with XetBlobLimitError before downloading anything (browsers cap Blob
   *  memory near 0.5 GiB in fresh or Incognito profiles): use downloadStream, or pass
   *  `Infinity` where the browser is known to hold it. */
  maxBlobBytes?: number;
  /** downloadStream: bytes per stream piece (default 8 MiB; the last piece may be shorter). */
  blockSize?: number;
  /** Stops the download and its fetches: downloadToBlob rejects with `signal.reason`, a
   *  downloadStream errors with it. */
  signal?: AbortSignal;
}

export interface SessionOptions {
  /** Receives every progress event of every file and of finalize(). */
  onProgress?: (event: SessionProgressEvent) => void | Promise<void>;
  /** Bytes read from a File/Blob at a time (default 16 MiB). */
  blockSize?: number;
  /** Bound of the upload pipeline's buffered data (default 64 MiB in a page). */
  maxBufferedBytes?: number;
  /** Xorb uploads in flight at once (default 4). */
  maxConcurrentUploads?: number;
  /** Downloads' chunk cache: "browser" (Cache API, survives reloads; the default in a secure
   *  context), "memory", or "none" / false. */
  chunkCache?: "browser" | "memory" | "none" | false;
  /** Upload resume: acknowledged xorbs are recorded so that uploading the same file again
   *  after a reload or a closed tab sends only the rest. Default: this origin's IndexedDB;
   *  false: off; or a ResumeStore. */
  resume?: boolean | ResumeStore;
  /** What besides the CAS endpoint keys the resume state (e.g. a repository). */
  resumeScope?: string;
}

/** A session (from `new xet.XetSession(...)`; the class is created by loadXet()). */
export interface XetSession {
  /** Chunk, deduplicate and upload a File/Blob, read in bounded blocks (never whole). */
  uploadFile(file: Blob, options?: UploadOptions): Promise<FileResult>;
  uploadBytes(bytes: Uint8Array | ArrayBuffer, options?: UploadOptions): Promise<FileResult>;
  /** Upload pending xorbs, then the shard registering every file since the last finalize. */
  finalize(options?: {
    onProgress?: (event: SessionProgressEvent) => void | Promise<void>;
    /** Aborting while xorbs still upload drops the batch (nothing registered) and rejects
     *  with `signal.reason`; once the shard is being sent the abort is ignored. */
    signal?: AbortSignal;
  }): Promise<CommitResult>;
  /** Drop the files uploaded since the last finalize (no shard is sent). */
  abort(): Promise<void>;
  downloadToBlob(fileHash: string, size: number, options?: DownloadOptions): Promise<Blob>;
  downloadStream(fileHash: string, size: number, options?: DownloadOptions): ReadableStream<Uint8Array>;
  close(): Promise<void>;
}

export interface XetSessionConstructor {
  /** `casEndpoint` may be null when `tokenInfo` carries `casUrl`. */
  new (casEndpoint: string | null, tokenInfo: TokenInfoLike, tokenRefresher?: TokenRefresher | null,
       options?: SessionOptions): XetSession;
}

export interface HashResult {
  fileHash: string;
  fileSize: number;
  sha256: string | null;
  chunks: number;
}

/** A Hub repository: "namespace/name" (a model), "datasets/namespace/name",
 *  "spaces/namespace/name", or {type, name} as in @huggingface/hub. */
export type RepoDesignation = string | { type: "model" | "dataset" | "space"; name: string };

/** What every `xet.hub` call takes. */
export interface HubParams {
  /** Default "https://huggingface.co". */
  hubUrl?: string;
  /** A Hub token (hf_...); none for public repositories. */
  accessToken?: string;
  repo: RepoDesignation;
}

export type HubUploadPhase = "preuploading" | "hashing" | "processing" | "uploading_xorbs"
  | "uploading_shard" | "validating_shard" | "committing" | "done";

export interface HubFileProgress {
  path: string;
  size: number;
  /** Decided after the preupload call: "lfs" (Xet), "regular" (inline), "unchanged" or
   *  "ignored" (not sent); null before. */
  mode: "lfs" | "regular" | "unchanged" | "ignored" | null;
  bytesProcessed: number;
  /** Serialized xorb bytes of this file's new (not deduplicated) chunks so far. */
  bytesPacked: number;
  /** Of those, bytes the server has stored. */
  bytesUploaded: number;
}

/** One stream from the first byte to the commit. "hashing": SHA-256 of files the repository
 *  already holds a large file for (an unchanged one is then not uploaded). */
export interface HubProgressEvent {
  phase: HubUploadPhase;
  /** Bytes of the files that are sent (Xet or inline). */
  bytesTotal: number;
  bytesProcessed: number;
  /** Xorb bytes sent to the CAS. */
  bytesTransferred: number;
  /** Bytes found in xorbs an earlier, interrupted upload of this origin left on the server
   *  (the IndexedDB resume journal): not sent again. */
  bytesResumed: number;
  files: HubFileProgress[];
  /** Requests retried so far: the Hub calls' (preupload, Xet token, …) and the upload
   *  session's. The commit is never retried. */
  retries: number;
  /** Only in the event announcing a retry, before its wait (see ProgressEvent). */
  retry?: RetryAnnouncement;
}

export interface UploadFilesParams extends HubParams {
  /** A File goes in under its name. */
  files: Array<File | { path: string; content: Blob | ArrayBuffer | ArrayBufferView }>;
  /** Default "main". */
  branch?: string;
  /** Default "Upload N files". */
  commitTitle?: string;
  commitDescription?: string;
  /** The commit is refused (XetHubConflictError, status 409) if the branch moved past it. */
  parentCommit?: string;
  /** Upload resume (as XetSession's option; scoped to the repository). Default: this
   *  origin's IndexedDB; false: off. */
  resume?: boolean | ResumeStore;
  onProgress?: (event: HubProgressEvent) => void | Promise<void>;
  /** Aborting before the commit is sent leaves the repository unchanged and rejects with
   *  `signal.reason`; once the commit is sent the abort is ignored. */
  signal?: AbortSignal;
  /** Bytes read from a File at a time (default 16 MiB). */
  blockSize?: number;
}

export interface HubFileResult {
  path: string;
  size: number;
  mode: "lfs" | "regular" | "unchanged" | "ignored";
  /** Whether its content is part of the commit. */
  uploaded: boolean;
  /** Hex SHA-256 (null for an ignored file). */
  sha256: string | null;
  /** Xet file hash of a file uploaded through Xet. */
  xetHash: string | null;
}

export interface UploadFilesResult {
  /** The new commit, or the branch's head when nothing changed (`committed` false). */
  commitOid: string;
  commitUrl: string;
  committed: boolean;
  pullRequestUrl: string | null;
  files: HubFileResult[];
  /** The Xet upload's counters (null when no file went through Xet). */
  metrics: UploadMetrics | null;
}

export interface DownloadFileParams extends HubParams {
  path: string;
  /** Branch, refs/pr/N or commit id (default "main"). */
  revision?: string;
  /** Byte range, end exclusive (not checked against the file hash: see docs/download.md). */
  range?: { start: number; end: number } | [number, number];
  onProgress?: (event: Record<string, unknown>) => void | Promise<void>;
  /** MIME type of the Blob. */
  type?: string;
  /** downloadFileStream: bytes per piece (default 8 MiB). */
  blockSize?: number;
  signal?: AbortSignal;
  /** Default: one Cache API chunk cache for all downloads of this instance. */
  chunkCache?: "browser" | "memory" | "none" | false;
}

export interface ListFilesParams extends HubParams {
  revision?: string;
  /** A folder of the repository (default: the root). */
  path?: string;
  recursive?: boolean;
  /** Adds `lastCommit`. */
  expand?: boolean;
}

export interface ListFileEntry {
  type: "file" | "directory";
  path: string;
  size: number;
  oid: string;
  lfs?: { oid: string; size: number; pointerSize: number };
  xetHash?: string;
  lastCommit?: { id: string; title: string; date: string };
}

export interface CreateRepoParams extends HubParams {
  private?: boolean;
  visibility?: "public" | "private";
  /** An existing repository is not an error. */
  existOk?: boolean;
}

/** `xet.hub`: Hub repositories through Xet (docs/hub.md). */
export interface XetHub {
  /** Preupload, Xet upload of the large files (dedup, workers, SHA-256 in the same pass),
   *  one NDJSON commit with the small ones inline. */
  uploadFiles(params: UploadFilesParams): Promise<UploadFilesResult>;
  /** A verified Blob of the file (or of `range`), or null when there is no such file. */
  downloadFile(params: DownloadFileParams): Promise<Blob | null>;
  /** The same as a ReadableStream (its last piece only once verified), or null. */
  downloadFileStream(params: DownloadFileParams): Promise<ReadableStream<Uint8Array> | null>;
  listFiles(params: ListFilesParams): AsyncGenerator<ListFileEntry>;
  createRepo(params: CreateRepoParams): Promise<{ repoUrl: string; id: string }>;
}

export interface Xet {
  XetSession: XetSessionConstructor;
  /** Hub repositories (uploadFiles, downloadFile, downloadFileStream, listFiles, createRepo). */
  hub: XetHub;
  pyodide: PyodideInterface;
  /** Hashing workers running (0: single-threaded). */
  workers: number;
  /** Whether uploads' SHA-256 runs in a worker of its own (else on the page's thread). */
  sha256Worker: boolean;
  crossOriginIsolated: boolean;
  /** File name of the installed wheel. */
  wheel: string;
  /** Xet file hash of a File/Blob without uploading (`sha256: true` adds its SHA-256). */
  /** `signal`: an AbortSignal; aborting rejects with its reason. */
  hashFile(file: Blob, options?: { blockSize?: number; sha256?: boolean; signal?: AbortSignal }): Promise<HashResult>;
  /** Stop the workers. */
  close(): void;
}

export interface LoadXetOptions {
  /** Directory holding `pyodide/` (default: the directory of xet_pyodide.js). */
  baseUrl?: string | URL;
  /** Hashing workers (default navigator.hardwareConcurrency; 0 = none). Without cross-origin
   *  isolation the pool is disabled with a console warning. */
  workers?: number;
  /** Compute the SHA-256 of uploaded Files/Blobs (and of `hashFile(…, {sha256: true})`) in a
   *  worker of its own that reads the Blob a second time, instead of chaining it on the pool's
   *  workers from the blocks they read anyway. Needs the pool. Default: off (the chain is as
   *  fast at any core count and reads each File once; docs/browser.md). */
  sha256Worker?: boolean;
  /** Extra options for loadPyodide (stdout, stderr, ...). */
  pyodideOptions?: Record<string, unknown>;
}

/** Load Pyodide from `${baseUrl}pyodide/` (no CDN), install the wheel, start the workers. */
export declare function loadXet(options?: LoadXetOptions): Promise<Xet>;
