// Request-body mechanisms compared by bench/upload_bodies.py: each uploads config.totalMib of
// random bytes in bodies of config.bodyMib, config.inflight at a time, to /_sink.
const MIB = 1 << 20;

function randomBuffer(bytes) {
  const out = new Uint8Array(bytes);
  for (let pos = 0; pos < bytes; pos += 65536) crypto.getRandomValues(out.subarray(pos, pos + 65536));
  return out;
}

/** One body's upload by `mode`; `u8` is a view of a pooled buffer the caller reuses after. */
async function sendOnPage(mode, url, u8) {
  if (mode === "blob") {
    let blob = new Blob([u8]);
    const r = await fetch(url, { method: "POST", body: blob });
    blob = null; // no reference left: the best that releasing Pyodide proxies can achieve
    await r.arrayBuffer();
    return r.status;
  }
  if (mode === "u8") {
    const r = await fetch(url, { method: "POST", body: u8 });
    await r.arrayBuffer();
    return r.status;
  }
  if (mode === "stream") {
    const piece = MIB;
    let pos = 0;
    const body = new ReadableStream({
      pull(controller) {
        if (pos >= u8.length) { controller.close(); return; }
        controller.enqueue(u8.slice(pos, pos + piece));
        pos += piece;
      },
    });
    const r = await fetch(url, { method: "POST", body, duplex: "half" });
    await r.arrayBuffer();
    return r.status;
  }
  if (mode === "xhr") {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.onload = () => resolve(xhr.status);
      xhr.onerror = () => reject(new Error("XMLHttpRequest failed"));
      xhr.send(u8);
    });
  }
  throw new Error(`unknown mode ${mode}`);
}

class WorkerSender {
  /** Bodies transferred to a worker that fetches them; a worker is retired after
   * `recycleBytes` and terminated once its last upload ended. */
  constructor(recycleBytes, asBlob) {
    this.recycleBytes = recycleBytes;
    this.asBlob = asBlob;
    this.current = null;
    this.started = 0;
    this.nextId = 1;
  }

  _worker() {
    if (this.current === null || this.current.bytes >= this.recycleBytes) {
      const old = this.current;
      if (old !== null) { old.retired = true; if (old.pending === 0) old.worker.terminate(); }
      const worker = new Worker("/bench/upload_bodies_worker.mjs", { type: "module" });
      this.current = { worker, bytes: 0, pending: 0, retired: false, waiters: new Map() };
      const entry = this.current;
      worker.onmessage = (e) => {
        const waiter = entry.waiters.get(e.data.id);
        if (!waiter(e.data)) return;
        entry.waiters.delete(e.data.id);
        entry.pending -= 1;
        if (entry.retired && entry.pending === 0) entry.worker.terminate();
      };
      this.started += 1;
    }
    return this.current;
  }

  send(url, u8) {
    const entry = this._worker();
    const id = this.nextId++;
    entry.bytes += u8.length;
    entry.pending += 1;
    return new Promise((resolve, reject) => {
      let buffer = null;
      entry.waiters.set(id, (data) => {
        if (data.buffer && this.asBlob) { buffer = data.buffer; return false; }  // not done yet
        if (data.error) reject(new Error(data.error));
        else resolve({ ...data, buffer: buffer ?? data.buffer });
        return true;
      });
      entry.worker.postMessage({ id, url, buffer: u8.buffer, length: u8.length,
                                 asBlob: this.asBlob }, [u8.buffer]);
    });
  }

  close() { if (this.current) this.current.worker.terminate(); }
}

/** Mode "cap": Blobs of config.bodyMib kept alive until one can no longer be read back (the
 * in-memory Blob cap of this context); returns the bytes held when it failed. */
async function blobCap(config, report) {
  const bytes = config.bodyMib * MIB;
  const source = randomBuffer(bytes);
  const kept = [];
  await report("start", {});
  let failed = null;
  while (kept.length * bytes < 8 * 1024 * MIB) {
    const blob = new Blob([source]);
    try {
      const tail = new Uint8Array(await blob.slice(bytes - 1).arrayBuffer());
      if (tail[0] !== source[bytes - 1]) throw new Error("wrong byte");
    } catch (err) { failed = String(err); break; }
    kept.push(blob);
  }
  await report("end", {});
  return { mode: "cap", heldMib: kept.length * config.bodyMib, failed };
}

export async function run(config, status, report) {
  if (config.mode === "cap") return blobCap(config, report);
  const bodyBytes = config.bodyMib * MIB;
  const count = Math.round(config.totalMib / config.bodyMib);
  status("generating data");
  const source = randomBuffer(bodyBytes);
  const pool = Array.from({ length: config.inflight }, () => new Uint8Array(bodyBytes));
  const sender = config.mode.startsWith("worker")
    ? new WorkerSender(config.recycleMib * MIB, config.mode === "worker-blob") : null;
  await report("start", {});
  const t0 = performance.now();
  let next = 0, done = 0, failed = null;
  const url = `/_sink?mode=${config.mode}`;
  async function lane(slot) {
    let buf = pool[slot];
    while (next < count && failed === null) {
      const i = next++;
      if (sender !== null) {
        if (buf === null || buf.byteLength === 0) buf = new Uint8Array(bodyBytes);
        buf.set(source); // the copy out of the wasm heap
        buf[0] = i & 255;
        try {
          const back = await sender.send(url, buf);
          buf = new Uint8Array(back.buffer); // transferred back: reused
        } catch (err) { failed ??= `body ${i}: ${err}`; }
      } else {
        buf.set(source);
        buf[0] = i & 255;
        try { await sendOnPage(config.mode, url, buf); } catch (err) { failed ??= `body ${i}: ${err}`; }
      }
      done += failed === null ? 1 : 0;
      status(`${config.mode}: ${done} / ${count}`);
    }
  }
  await Promise.all(pool.map((_, slot) => lane(slot)));
  const seconds = (performance.now() - t0) / 1000;
  await report("end", {});
  // settle: no further allocation; does anything get returned without a collection?
  await new Promise((resolve) => setTimeout(resolve, config.settleMs));
  if (sender !== null) sender.close();
  return { mode: config.mode, bodies: count, sent: done, failed, seconds,
           mbPerS: (done * bodyBytes) / 1e6 / seconds,
           workersStarted: sender?.started ?? 0 };
}
