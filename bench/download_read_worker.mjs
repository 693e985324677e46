// Worker half of the "wfetch" mode of bench/download_payload.py: reads one response body to
// the end off the page's main thread and reports its length (nothing is decoded).
self.onmessage = async (event) => {
  const { id, url, range } = event.data;
  try {
    const resp = await fetch(url, { headers: { Range: range } });
    const reader = resp.body.getReader();
    let bytes = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
    }
    postMessage({ id, bytes });
  } catch (err) {
    postMessage({ id, error: String(err) });
  }
};
