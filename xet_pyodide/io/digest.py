"""SHA-256 computed by the host instead of hashlib, where that is faster.

Inside Pyodide, ``hashlib.sha256`` runs as portable wasm (~300 MB/s) on the thread that also
chunks and hashes. The host's WebCrypto (``crypto.subtle.digest``) is native and runs off that
thread, in parallel with our work. It is one-shot (the whole buffer at once), so it suits
in-memory uploads; streaming uploads keep hashlib (or get a digest from the caller).

:func:`sha256_in_background` serves both kinds of in-memory upload: Python buffers
(``XetSession.upload_bytes``, copied once into JS memory) and buffers that already live in JS
(``uploadBytes`` of the JS API, hashed where they are).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable
from typing import Any

from .jsinterop import js_uint8array_copy


def _webcrypto() -> Any:
    """The host's ``crypto.subtle``, or None (CPython, or a host without WebCrypto)."""
    if sys.platform != "emscripten":
        return None
    import js  # type: ignore[import-not-found]

    return getattr(getattr(js, "crypto", None), "subtle", None)


def sha256_in_background(data: Any) -> Awaitable[Any] | None:
    """Start a WebCrypto SHA-256 of ``data``; return an awaitable resolving to an
    ``ArrayBuffer`` proxy, or None when that is not possible.

    ``data`` is either a JS buffer (a ``Uint8Array``/``ArrayBuffer``/… proxy, anything with a
    ``byteLength``), digested in place without entering Python, or a Python buffer, copied
    once into a JS ``Uint8Array`` first. Anything else, and any host without
    ``crypto.subtle`` (CPython included), gives None: the caller then hashes with hashlib."""
    subtle = _webcrypto()
    if subtle is None:
        return None
    if hasattr(data, "byteLength"):
        return subtle.digest("SHA-256", data)
    try:
        view = memoryview(data)
    except TypeError:  # neither a JS nor a Python buffer
        return None
    return subtle.digest("SHA-256", js_uint8array_copy(view))


__all__ = ["sha256_in_background"]
