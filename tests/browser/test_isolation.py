"""The static server makes pages cross-origin isolated, with the MIME types Pyodide needs."""

from __future__ import annotations

import urllib.request


def test_harness_page_is_cross_origin_isolated(browser_runtime):
    assert browser_runtime.cross_origin_isolated is True
    assert browser_runtime.evaluate("() => typeof SharedArrayBuffer") == "function"


def test_static_server_headers_and_mime_types(static_server):
    for path, mime in [
        ("/harness.html", "text/html"),
        ("/pyodide/pyodide.asm.wasm", "application/wasm"),
        ("/pyodide/pyodide.mjs", "text/javascript"),
        ("/pyodide/pyodide-lock.json", "application/json"),
    ]:
        with urllib.request.urlopen(static_server.url + path) as resp:
            assert resp.headers["Content-Type"].startswith(mime), path
            assert resp.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert resp.headers["Cross-Origin-Embedder-Policy"] == "require-corp"


def test_static_server_refuses_path_traversal(static_server):
    import urllib.error

    try:
        urllib.request.urlopen(static_server.url + "/%2e%2e/pyproject.toml")
    except urllib.error.HTTPError as err:
        assert err.code == 404
    else:
        raise AssertionError("path traversal was served")
