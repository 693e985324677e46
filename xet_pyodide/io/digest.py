"""SHA-256 computed by the host instead of hashlib, where that is faster.

Inside Pyodide, ``hashlib.sha256`` runs as portable wasm (~300 MB/s) on the thread that also
chunks and hashes. The host's WebCrypto (``crypto.subtle.digest``) is native and runs off that
thread, in parallel with our work. It is one-shot (the whole buffer at once), so it suits
in-memory uploads; streaming uploads keep hashlib (or get a digest from the caller).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable
from typing import Any


def sha256_in_background(data: memoryview) -> Awaitable[Any] | None:
    """Start a WebCrypto SHA-256 of ``data`` (copied once into JS memory). Returns an
    awaitable resolving to an ``ArrayBuffer`` proxy, or None when not available (CPython, or a
    host without ``crypto.subtle``)."""
    if sys.platform != "emscripten":
        return None
    import js  # type: ignore[import-not-found]

    subtle = getattr(getattr(js, "crypto", None), "subtle", None)
    if subtle is None:
        return None
    array = js.Uint8Array.new(len(data))
    array.assign(data)
    return subtle.digest("SHA-256", array)


__all__ = ["sha256_in_background"]
