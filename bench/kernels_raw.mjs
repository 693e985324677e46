// Kernel-only throughput (no Python, no copies): instantiate xet_kernels.wasm directly from
// JavaScript, the way a Web Worker would, and time the raw exports on data already in the
// module's memory. Shared by bench/kernels_page.html and bench/kernels_node.mjs; the difference
// to the payload's numbers is the cost of the Python API (copies and call overhead).
export async function kernelOnly(wasmBytes, sizeMiB = 64, repeat = 3) {
  const { instance } = await WebAssembly.instantiate(wasmBytes, {});
  const e = instance.exports;
  const n = sizeMiB << 20;
  const chunk = 65536;
  const count = n / chunk;
  const base = e.xk_reserve(n + count * 4 + count * 32 + 65536);
  const key = base, state = base + 32, lens = base + 64;
  const out = lens + count * 4, data = out + count * 32 + 64;
  const mem = new Uint8Array(e.memory.buffer);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(mem.subarray(data + i, data + i + 65536));
  new Uint32Array(e.memory.buffer, lens, count).fill(chunk);
  const best = (fn) => {
    fn(); fn(); // let the tiering compiler optimize
    let t = Infinity;
    for (let r = 0; r < repeat; r++) { const t0 = performance.now(); fn(); t = Math.min(t, performance.now() - t0); }
    return n / (t / 1000) / 1e9;
  };
  return {
    gear_scan: best(() => e.xk_gear_scan(data, n, state, out, count * 8)),
    blake3_64k: best(() => e.xk_blake3_keyed_many(data, lens, count, key, out)),
    crc64: best(() => e.xk_crc64_nvme(data, n, state)),
  };
}
