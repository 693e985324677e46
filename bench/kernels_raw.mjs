// Kernel-only throughput (no Python, no copies): instantiate xet_kernels.wasm directly from
// JavaScript, the way a Web Worker would, and time the raw exports on data already in the
// module's memory. Shared by bench/kernels_page.html, bench/kernels_node.mjs and
// bench/floor_page.mjs; the difference to the payload's numbers is the cost of the Python API
// (copies and call overhead).
//
// Beside the scan and hash kernels, the upload's and download's per-byte record work over
// 64 KiB chunks, with the xorb CRC continued as the upload does: `records_lz4_random`
// (xk_encode_records, LZ4 attempted on every chunk of random data: all stored raw),
// `records_bg4_floats` (BG4 + LZ4 on float32-like data), `records_raw` (stored raw without an
// attempt: a copy + CRC), and `decode_*` (xk_decode_records of those records, no hashing).
// `sha256` is xk_sha256_blocks. Rates are bytes of input (chunk bytes) per second, in GB/s.
export async function kernelOnly(wasmBytes, sizeMiB = 64, repeat = 3) {
  const { instance } = await WebAssembly.instantiate(wasmBytes, {});
  const e = instance.exports;
  const n = sizeMiB << 20;
  const chunk = 65536;
  const count = n / chunk;
  const recBound = e.xk_record_bound(chunk) * count;
  // layout: key, state, lens, schemes, info, digests, random data, float data, records, decoded
  const base = e.xk_reserve(64 + count * 4 + count + (3 + count) * 4 + count * 32 + 256
                            + 2 * n + recBound + n + (128 << 10) + 1024);
  const key = base, state = base + 32, lens = base + 64;
  const schemes = lens + count * 4, info = schemes + count + 64;
  const out = (info + (3 + count) * 4 + 63) & ~63;
  const data = out + count * 32 + 64;
  const floats = data + n, records = floats + n, decoded = records + recBound;
  const scratch = decoded + n;
  const mem = new Uint8Array(e.memory.buffer);
  for (let i = 0; i < 2 * n; i += 65536) crypto.getRandomValues(mem.subarray(data + i, data + i + 65536));
  // float32 little endian around 2**-7 with random mantissas (as bench/browser.py's file)
  for (let i = floats + 3; i < floats + n; i += 4) mem[i] = (mem[i] & 0x80) | 0x3c;
  new Uint32Array(e.memory.buffer, lens, count).fill(chunk);
  const best = (fn) => {
    fn(); fn(); // let the tiering compiler optimize
    let t = Infinity;
    for (let r = 0; r < repeat; r++) { const t0 = performance.now(); fn(); t = Math.min(t, performance.now() - t0); }
    return n / (t / 1000) / 1e9;
  };
  const encode = (src, scheme) => () => {
    mem.fill(scheme, schemes, schemes + count);
    mem.fill(0, state, state + 8);
    const size = e.xk_encode_records(src, count, lens, schemes, records, scratch, state);
    if (size < 0) throw new Error(`xk_encode_records: ${size}`);
    return size;
  };
  const decode = () => {
    const got = e.xk_decode_records(records, recBound, count, decoded, n, scratch, info, 0, 0);
    if (got !== count) throw new Error(`xk_decode_records: ${got}`);
  };
  const result = {
    gear_scan: best(() => e.xk_gear_scan(data, n, state, out, count * 8)),
    blake3_64k: best(() => e.xk_blake3_keyed_many(data, lens, count, key, out)),
    crc64: best(() => e.xk_crc64_nvme(data, n, state)),
    sha256: best(() => e.xk_sha256_blocks(state, data, n / 64)),
  };
  for (const [name, src, scheme] of [["lz4_random", data, 1], ["bg4_floats", floats, 2],
                                     ["raw", data, 0]]) {
    result[`records_${name}`] = best(encode(src, scheme));
    result[`decode_${name}`] = best(decode);
  }
  return result;
}
