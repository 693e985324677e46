// Worker half of the "blob read ceiling" of bench/browser.py: reads blob[from, to) in slices of
// `step` bytes with `slice().arrayBuffer()` — what the hashing workers do first with every
// block — and discards them. Two of these running together give the throughput no chunk+hash
// of that Blob can beat on this machine, whatever it does with the bytes.
self.onmessage = async (event) => {
  const { blob, from, to, step } = event.data;
  try {
    let bytes = 0;
    for (let p = from; p < to; p += step) {
      bytes += (await blob.slice(p, Math.min(p + step, to)).arrayBuffer()).byteLength;
    }
    postMessage({ bytes });
  } catch (err) {
    postMessage({ error: String(err) });
  }
};
