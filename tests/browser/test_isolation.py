"""The static server makes pages cross-origin isolated, with the MIME types Pyodide needs."""

from __future__ import annotations

import urllib.request

from tests.plugins.runtimes import evaluate_steps

from .conftest import requires_browser


@requires_browser
def test_harness_page_is_cross_origin_isolated(chromium, static_server):
    """The page's own isolation (its headers); loading Pyodide there is the page tests' job."""
    script = "() => [crossOriginIsolated, typeof SharedArrayBuffer]"
    got = evaluate_steps(chromium, f"{static_server.url}/harness.html", script, [{}])
    assert got == [[True, "function"]]


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
