"""Fixtures of the browser-package tests: the local CAS server serving the web pages.

``web_cas`` is one CAS server per module started with ``--web`` (pages are cross-origin
isolated and talk to the server on their own origin). Its web root is a temporary directory of
symlinks to ``web/``'s entries plus ``_fixtures/``, where ``DemoPage.add_fixture(name, data)``
writes test data that pages fetch with ``window.fixture(name)`` (a cached ``Blob``): nothing is
written into ``web/`` and no large body crosses Playwright's slow CDP channel.
``open_page(**query)`` opens ``/index.html?secret=…&<query>`` in the session's headless
Chromium, waits until ``loadXet()`` finished and returns a :class:`DemoPage`.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.plugins.cas_server import CasServer
from tests.plugins.runtimes import REPO, BrowserThread, ensure_wheel_fresh, selected_runtimes

WEB = REPO / "web"
MIB = 1 << 20

#: Module mark of the browser tests that need Chromium: skipped when XET_TEST_RUNTIMES
#: leaves the browser out.
requires_browser = pytest.mark.skipif(
    "browser" not in selected_runtimes(), reason="runtime browser deselected by XET_TEST_RUNTIMES"
)


def random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def float_like(n: int, seed: int) -> bytes:
    """float32-shaped bytes (random mantissas, narrow exponents): BG4-LZ4 compresses them."""
    data = bytearray(random_bytes(n, seed))
    table = bytes((b & 0x80) | 0x3C for b in range(256))
    data[3::4] = bytes(data[3::4]).translate(table)
    return bytes(data)


FIXTURE_JS = """
// Page-side helpers for the tests' scripts.
// A session of the demo page's xet_pyodide instance with a write token for models/<repo>
// from the CAS server's token endpoint (dev secret from the page URL), refreshed through it.
window.writeSession = async (repo, options) => {
  const m = await import('/xet_pyodide.js');
  const secret = new URLSearchParams(location.search).get('secret');
  const url = `${location.origin}/api/models/${repo}/xet-write-token/main`;
  const headers = {Authorization: 'Bearer ' + secret};
  return new window.demo.xet.XetSession(location.origin, await m.fetchToken(url, headers),
                                        new m.TokenEndpointRefresher(url, headers), options);
};
// SHA-256 of an ArrayBuffer (or view), lowercase hex.
window.sha256Hex = async (buf) => Array.from(
  new Uint8Array(await crypto.subtle.digest('SHA-256', buf)),
  (b) => b.toString(16).padStart(2, '0')).join('');
// The test fixture `name` (served from /_fixtures/) as a Blob, fetched once per page.
window.fixture = (name) => {
  const cache = (window.__fixtures ??= new Map());
  if (!cache.has(name)) cache.set(name, fetch('/_fixtures/' + name).then((r) => {
    if (!r.ok) throw new Error(`fixture ${name}: HTTP ${r.status}`);
    return r.blob();
  }));
  return cache.get(name);
};
"""


class DemoPage:
    """One ``web/index.html`` page. ``evaluate`` runs on the browser thread; ``init_js`` runs
    in the page before its own scripts (e.g. to pretend another core count)."""

    def __init__(self, chromium: BrowserThread, server: CasServer, query: dict[str, Any],
                 strip_isolation: bool = False, init_js: str | None = None) -> None:
        self._chromium = chromium
        self.server = server
        self.console: list[str] = []
        params = {"secret": server.dev_secret, **query}
        self.url = f"{server.url}/index.html?{urlencode(params)}"

        def open_page(browser: Any) -> tuple[Any, Any]:
            context = browser.new_context()
            page = context.new_page()
            page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
            if strip_isolation:
                page.route(f"{server.url}/index.html*", _without_isolation)
            page.add_init_script(FIXTURE_JS)
            if init_js is not None:
                page.add_init_script(init_js)
            page.goto(self.url)
            page.evaluate("() => window.demo.ready.then(() => true)")
            return context, page

        self._context, self.page = chromium.call(open_page)

    def add_fixture(self, name: str, data: bytes) -> None:
        """Make ``data`` available to pages as ``/_fixtures/<name>``."""
        (self.server.web_root / "_fixtures" / name).write_bytes(data)

    def evaluate(self, expression: str, arg: Any = None, timeout: float = 600) -> Any:
        return self._chromium.call(lambda _b: self.page.evaluate(expression, arg), timeout=timeout)

    def call(self, fn: Callable[[Any], Any], timeout: float = 600) -> Any:
        """``fn(page)`` on the browser thread."""
        return self._chromium.call(lambda _b: fn(self.page), timeout=timeout)

    def close(self) -> None:
        self._chromium.call(lambda _b: self._context.close())


def _without_isolation(route: Any) -> None:
    """Serve the page without COOP/COEP: it is then not cross-origin isolated."""
    response = route.fetch()
    headers = {k: v for k, v in response.headers.items()
               if k.lower() not in ("cross-origin-opener-policy", "cross-origin-embedder-policy")}
    route.fulfill(response=response, headers=headers)


@pytest.fixture(scope="module")
def web_cas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CasServer]:
    ensure_wheel_fresh()
    root = tmp_path_factory.mktemp("cas-web")
    web_root = root / "web"
    (web_root / "_fixtures").mkdir(parents=True)
    for entry in WEB.iterdir():
        (web_root / entry.name).symlink_to(entry)
    with web_server(root, web_root) as server:
        yield server


@contextlib.contextmanager
def web_server(root: Path, web_root: Path) -> Iterator[CasServer]:
    """A CAS server with its data under ``root`` serving ``web_root`` (kept as ``.web_root``)."""
    server = CasServer(root / "data", web=web_root).start()
    server.web_root = web_root  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def open_page(chromium: BrowserThread, web_cas: CasServer
              ) -> Iterator[Callable[..., DemoPage]]:
    pages: list[DemoPage] = []

    def opener(strip_isolation: bool = False, init_js: str | None = None,
               **query: Any) -> DemoPage:
        page = DemoPage(chromium, web_cas, query, strip_isolation=strip_isolation,
                        init_js=init_js)
        pages.append(page)
        return page

    try:
        yield opener
    finally:
        for page in pages:
            page.close()


def write_files(directory: Path, files: dict[str, bytes]) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, data in files.items():
        out[name] = directory / name
        out[name].write_bytes(data)
    return out
