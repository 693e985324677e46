// Worker of bench/upload_bodies_page.mjs: uploads a transferred ArrayBuffer with fetch and
// transfers it back (mode "worker": once the response arrived; with `asBlob`: as soon as the
// bytes are copied into a Blob, which is then the body).
self.onmessage = async (event) => {
  const { id, url, buffer, length, asBlob } = event.data;
  try {
    let body = new Uint8Array(buffer, 0, length);
    if (asBlob) {
      body = new Blob([body]);
      self.postMessage({ id, buffer }, [buffer]);
    }
    const response = await fetch(url, { method: "POST", body });
    await response.arrayBuffer();
    if (asBlob) self.postMessage({ id, status: response.status });
    else self.postMessage({ id, status: response.status, buffer }, [buffer]);
  } catch (err) {
    self.postMessage({ id, error: String(err) });
  }
};
