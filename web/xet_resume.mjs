// Upload resume journals in IndexedDB: the browser store behind XetSession's resuming
// (xet_pyodide/session/resume.py says what a journal holds; xet_pyodide/io/resume_browser.py
// is the Python side). One database per origin, "xet_pyodide_resume", one object store of
// frames: {id (auto), name, data: Uint8Array, mtime}. A journal is the concatenation of its
// frames in id order. Every call is one IndexedDB transaction, so it happens whole or not at
// all; appends and rewrites ask for "strict" durability (flushed before they resolve).
//
// Why IndexedDB rather than the Origin Private File System: an append is one add() in
// IndexedDB, while an atomic OPFS write (createWritable + close) copies the whole file to a
// swap file first; OPFS's in-place sync access handles exist only in workers. Measured in
// headless Chromium (docs/upload.md, "Resuming"): see the figures there.

const DB_NAME = "xet_pyodide_resume";
const STORE = "frames";

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
    tx.onerror = () => reject(tx.error);
  });
}

export class IndexedDbResumeStore {
  #db = null;

  /** @param {string} [dbName] */
  constructor(dbName = DB_NAME) {
    this.dbName = dbName;
  }

  async #open() {
    if (this.#db === null) {
      const req = indexedDB.open(this.dbName, 1);
      req.onupgradeneeded = () => {
        const store = req.result.createObjectStore(STORE, { keyPath: "id", autoIncrement: true });
        store.createIndex("name", "name");
      };
      this.#db = request(req).then((db) => {
        db.onversionchange = () => { db.close(); this.#db = null; };
        return db;
      });
    }
    return this.#db;
  }

  async #tx(mode) {
    const db = await this.#open();
    return db.transaction(STORE, mode, { durability: mode === "readwrite" ? "strict" : "default" });
  }

  /** The journal's bytes, or null. */
  async read(name) {
    const tx = await this.#tx("readonly");
    const rows = await request(tx.objectStore(STORE).index("name").getAll(IDBKeyRange.only(name)));
    if (rows.length === 0) return null;
    rows.sort((a, b) => a.id - b.id);
    const out = new Uint8Array(rows.reduce((n, r) => n + r.data.byteLength, 0));
    let pos = 0;
    for (const r of rows) { out.set(r.data, pos); pos += r.data.byteLength; }
    return out;
  }

  async append(name, data) {
    const tx = await this.#tx("readwrite");
    tx.objectStore(STORE).add({ name, data: new Uint8Array(data), mtime: Date.now() });
    await done(tx);
  }

  /** Replace the whole journal (atomically: one transaction). */
  async replace(name, data) {
    const tx = await this.#tx("readwrite");
    const store = tx.objectStore(STORE);
    const keys = await request(store.index("name").getAllKeys(IDBKeyRange.only(name)));
    for (const key of keys) store.delete(key);
    store.add({ name, data: new Uint8Array(data), mtime: Date.now() });
    await done(tx);
  }

  async remove(name) {
    const tx = await this.#tx("readwrite");
    const store = tx.objectStore(STORE);
    const keys = await request(store.index("name").getAllKeys(IDBKeyRange.only(name)));
    for (const key of keys) store.delete(key);
    await done(tx);
  }

  /** Delete journals not written for maxAge seconds; resolves to how many. */
  async sweep(maxAge, now) {
    const tx = await this.#tx("readwrite");
    const store = tx.objectStore(STORE);
    const newest = new Map();
    const keysOf = new Map();
    await new Promise((resolve, reject) => {
      const req = store.openCursor();
      req.onerror = () => reject(req.error);
      req.onsuccess = () => {
        const cursor = req.result;
        if (cursor === null) { resolve(); return; }
        const { id, name, mtime } = cursor.value;
        newest.set(name, Math.max(newest.get(name) ?? 0, mtime));
        if (!keysOf.has(name)) keysOf.set(name, []);
        keysOf.get(name).push(id);
        cursor.continue();
      };
    });
    let removed = 0;
    for (const [name, mtime] of newest) {
      if (now * 1000 - mtime > maxAge * 1000) {
        for (const key of keysOf.get(name)) store.delete(key);
        removed += 1;
      }
    }
    await done(tx);
    return removed;
  }
}

let shared = null;

/** The page's default store (one per module instance). */
export function defaultResumeStore() {
  if (shared === null && typeof indexedDB !== "undefined") shared = new IndexedDbResumeStore();
  return shared;
}
