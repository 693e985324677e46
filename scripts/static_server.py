"""A small cross-origin-isolated static file server for `web/` (tests, benchmarks, quick demos).

Every response carries ``Cross-Origin-Opener-Policy: same-origin`` and
``Cross-Origin-Embedder-Policy: require-corp`` so pages are ``crossOriginIsolated`` and may use
SharedArrayBuffer (needed by the hashing worker pool). MIME types are set explicitly for the
files Pyodide and our package need (``.wasm``, ``.mjs``, ``.whl``, ...), because the defaults of
``mimetypes`` differ between systems.

Extra mounts map a URL prefix to another directory (``--mount /bench=bench``). A handler for
``POST /_report/<name>`` stores the JSON body so that a page running in a bare headless browser
(no Playwright/CDP attached while timing) can hand its results back; see :class:`StaticServer`.

Usage: ``python scripts/static_server.py [--root web] [--port 0] [--mount PREFIX=DIR ...]``.
It prints ``static server ready at http://127.0.0.1:PORT`` once listening.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import posixpath
import sys
import threading
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".tar": "application/x-tar",
    ".css": "text/css; charset=utf-8",
    ".d.ts": "text/plain; charset=utf-8",
    ".ts": "text/plain; charset=utf-8",
    ".map": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "cross-origin",
}


def mime_type(path: str) -> str:
    """The Content-Type we serve for ``path`` (by suffix; ``application/octet-stream`` else)."""
    name = path.lower()
    for suffix in sorted(MIME_TYPES, key=len, reverse=True):
        if name.endswith(suffix):
            return MIME_TYPES[suffix]
    return "application/octet-stream"


class _Handler(SimpleHTTPRequestHandler):
    server: StaticServer

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def end_headers(self) -> None:
        for name, value in ISOLATION_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def guess_type(self, path: str | Path) -> str:
        return mime_type(str(path))

    def translate_path(self, path: str) -> str:
        """Map a URL path onto the mounts, refusing anything that escapes its directory."""
        url_path = posixpath.normpath(unquote(urlsplit(path).path))
        for prefix, directory in self.server.mounts:
            if url_path == prefix.rstrip("/") or url_path.startswith(prefix):
                rel = url_path[len(prefix) :].lstrip("/")
                target = (directory / rel).resolve()
                if target != directory and directory not in target.parents:
                    return str(directory / "__forbidden__")
                return str(target)
        return str(self.server.root / "__not_found__")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if not path.startswith("/_report/"):
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            self.send_error(HTTPStatus.BAD_REQUEST, "body is not JSON")
            return
        self.server.store_report(path.removeprefix("/_report/"), payload)
        self.send_response(HTTPStatus.NO_CONTENT)
        self.end_headers()


class StaticServer(ThreadingHTTPServer):
    """Threaded static server with COOP/COEP headers; usable in-process from tests/benchmarks."""

    daemon_threads = True

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        mounts: dict[str, Path] | None = None,
        verbose: bool = False,
    ) -> None:
        self.root = root.resolve()
        all_mounts = {"/": self.root, **(mounts or {})}
        # Longest prefix first so "/bench/" wins over "/".
        self.mounts = sorted(
            ((p if p.endswith("/") else p + "/", d.resolve()) for p, d in all_mounts.items()),
            key=lambda item: len(item[0]),
            reverse=True,
        )
        self.verbose = verbose
        self._reports: dict[str, object] = {}
        self._report_cond = threading.Condition()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def store_report(self, name: str, payload: object) -> None:
        with self._report_cond:
            self._reports[name] = payload
            self._report_cond.notify_all()

    def wait_report(self, name: str, timeout: float) -> object:
        """Block until a page POSTed ``/_report/<name>``; raise TimeoutError otherwise."""
        with self._report_cond:
            if not self._report_cond.wait_for(lambda: name in self._reports, timeout):
                raise TimeoutError(f"no report {name!r} within {timeout} s")
            return self._reports.pop(name)

    def handle_error(self, request: object, client_address: object) -> None:
        """Browsers routinely drop connections mid-response; only report real errors."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    def start_background(self) -> StaticServer:
        threading.Thread(target=self.serve_forever, daemon=True, name="static-server").start()
        return self


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent / "web")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--mount", action="append", default=[], metavar="PREFIX=DIR")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    mounts = {}
    for spec in args.mount:
        prefix, _, directory = spec.partition("=")
        if not prefix.startswith("/") or not directory:
            parser.error(f"--mount expects /PREFIX=DIR, got {spec!r}")
        mounts[prefix] = Path(directory)
    server = StaticServer(args.root, host=args.host, port=args.port, mounts=mounts,
                          verbose=args.verbose)
    print(f"static server ready at {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
