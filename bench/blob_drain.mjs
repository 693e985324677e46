// Shared by the bench pages (peers_page.mjs, floor_page.mjs) and byob_stall_worker.mjs.

/** Read a Blob to its end (bytes discarded): what "downloaded" means for every client in
 *  bench/peers.py, and the read-back the floor bench charges to a download into a Blob. */
export async function drain(blob) {
  const reader = blob.stream().getReader();
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return bytes;
    bytes += value.byteLength;
  }
}
