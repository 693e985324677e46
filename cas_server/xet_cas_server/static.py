"""``--web DIR``: the demo page and its Pyodide distribution, served by the same process.

Cross-origin isolation (COOP ``same-origin`` + COEP ``require-corp``) is what gives the page
``SharedArrayBuffer`` for the hashing workers. Starlette's StaticFiles resolves paths inside the
directory only (``..`` and absolute paths are refused); symlinks are followed so a distribution
linked from node_modules works, but a path still has to be *named* inside the directory.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

MIME_TYPES = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".json": "application/json",
    ".html": "text/html",
    ".css": "text/css",
    ".map": "application/json",
    ".py": "text/x-python",
    ".tar": "application/x-tar",
    ".data": "application/octet-stream",
}

ISOLATION_HEADERS = [
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-embedder-policy", b"require-corp"),
    (b"cache-control", b"no-cache"),
]


def register_mime_types() -> None:
    for ext, mime in MIME_TYPES.items():
        mimetypes.add_type(mime, ext)


class IsolatedStaticFiles:
    """StaticFiles plus the cross-origin isolation headers on every answer."""

    def __init__(self, directory: Path) -> None:
        register_mime_types()
        self.files = StaticFiles(directory=directory, html=True, follow_symlink=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["xcas.endpoint"] = "static"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k not in dict(ISOLATION_HEADERS)
                ]
                message = {**message, "headers": headers + ISOLATION_HEADERS}
            await send(message)

        await self.files(scope, receive, send_with_headers)
