"""The JavaScript ``XetError`` never shows a presigned URL's query (headless Chromium, real
local CAS server on another origin, fault injection), and carries the request id and the
server's message.

Failure kinds: a signed xorb GET answering 404, 503 (retried, then given up: the server sends
``Retry-After: 0`` so that the six attempts take no time; 500 takes the same path in
test_errors_redacted.py of the CPython tests) or dropping the connection mid-body, and a grant
PUT answering 503 or 400. Downloads run with 0 and 2 pool workers at once (the page's ``fetch``
and the workers' ``fetch`` read xorb bodies), ``downloadStream`` too. Every string the page
can see — ``message``, ``String(err)``, ``stack``, ``url``, ``serverMessage``,
``pythonTraceback`` — and the console are checked.
"""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import requires_browser
from tests.cpython.test_errors_redacted import assert_no_query
from tests.plugins.download_corpus import Corpus

pytestmark = requires_browser

PAGE_SCRIPT = """
async (cfg) => {
  const m = await import("/xet_pyodide.js");
  const xets = (window.__xets ??= {});
  const fields = (err) => ({
    name: err.name, message: err.message, text: String(err), stack: err.stack ?? null,
    status: err.status ?? null, requestId: err.requestId ?? null,
    serverMessage: err.serverMessage ?? null, url: err.url ?? null,
    pythonTraceback: err.pythonTraceback ?? null,
  });
  const run = async (workers, i) => {
    const xet = await (xets[workers] ??= m.loadXet({ workers }));
    const token = new m.TokenInfo(cfg.token, cfg.exp);
    const s = new xet.XetSession(cfg.endpoint, token, null, { chunkCache: "none" });
    try {
      if (cfg.op === "upload") {
        const data = new Uint8Array(300000).map((_, k) => (k * 7 + i * 13 + cfg.seed) % 251);
        await s.uploadBytes(data, { name: "grant.bin" });
        await s.finalize();
      } else if (cfg.op === "stream") {
        const reader = s.downloadStream(cfg.hash, cfg.size).getReader();
        while (!(await reader.read()).done) { /* the first read fails */ }
      } else {
        await s.downloadToBlob(cfg.hash, cfg.size);
      }
      return { resolved: true };
    } catch (err) {
      return fields(err);
    } finally {
      await s.close();
    }
  };
  return Promise.all(cfg.workers.map(run));
}
"""

#: name → (endpoint, fault rule, op, expected error name, status)
KINDS = {
    "xorb 404": ("xorb_fetch", {"error_rate": 1.0, "status": 404}, "download",
                 "XetNotFoundError", 404),
    "xorb 404 stream": ("xorb_fetch", {"error_rate": 1.0, "status": 404}, "stream",
                        "XetNotFoundError", 404),
    "xorb 503": ("xorb_fetch", {"error_rate": 1.0, "status": 503, "retry_after": 0}, "download",
                 "XetServerError", 503),
    "xorb drop": ("xorb_fetch", {"drop_rate": 1.0}, "download", "XorbBodyInterrupted", None),
    "grant 503": ("grant_put", {"error_rate": 1.0, "status": 503, "retry_after": 0}, "upload",
                  "XetServerError", 503),
    "grant 400": ("grant_put", {"error_rate": 1.0, "status": 400}, "upload",
                  "XetServerError", 400),
}  # fmt: skip


def test_js_errors_show_no_signature(chromium: Any, static_server: Any, corpus: Corpus) -> None:
    server = corpus.server
    f = corpus.files["text"]
    read, read_exp = corpus.read_token()
    write, write_exp = server.token("write")
    console: list[str] = []
    logs: dict[str, list[dict[str, Any]]] = {}

    def go(browser: Any) -> dict[str, list[dict[str, Any]]]:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
            page.goto(f"{static_server.url}/harness.html")
            out = {}
            for seed, (kind, (endpoint, rule, op, _, _)) in enumerate(KINDS.items()):
                upload = op == "upload"
                cfg = {
                    "endpoint": server.url, "op": op, "seed": seed, "hash": f["hash"],
                    "size": f["size"], "workers": [0] if op == "stream" else [0, 2],
                    "token": write if upload else read, "exp": write_exp if upload else read_exp,
                }  # fmt: skip
                server.set_faults(endpoints={endpoint: rule})
                try:
                    out[kind] = page.evaluate(PAGE_SCRIPT, cfg)
                    logs[kind] = [e for e in server.request_log() if e["endpoint"] == endpoint]
                finally:
                    server.set_faults()
            return out
        finally:
            context.close()

    results = chromium.call(go, timeout=600)
    for kind, (endpoint, _, _, name, status) in KINDS.items():
        faulted = {e["request_id"] for e in logs[kind] if e.get("fault")}
        for err in results[kind]:
            assert err.get("name") == name, (kind, err)
            texts = {key: value for key, value in err.items() if isinstance(value, str)}
            assert_no_query(texts)
            assert err["status"] == status, (kind, err)
            assert err["url"].startswith(server.url + "/") and "?" not in err["url"], err
            assert err["requestId"] in faulted, (kind, err, faulted)  # the failing request's id
            if status is None:
                assert err["serverMessage"] is None, err
            else:
                assert err["serverMessage"] == f"fault injection: {status} on {endpoint}", err
            assert err["message"].startswith(
                "xorb upload " if endpoint == "grant_put" else "xorb fetch"
            ), err
    # The console's texts (ours and Chromium's). Chromium's own "Failed to load resource"
    # entries name the full URL as their source location, as for any failed fetch of a page:
    # that is the browser's DevTools, which no page code can change (docs/browser.md).
    assert any("Failed to load resource" in line for line in console), console
    assert_no_query({f"console {i}": line for i, line in enumerate(console)})
