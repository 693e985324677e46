"""Python bytes → a JavaScript ``Uint8Array`` (Pyodide only; ``js`` is imported on call).

It lives with the kernel loaders because they are the lowest code that hands bytes to
JavaScript (the ``.wasm`` to compile); the I/O layer uses the same helper through
:mod:`xet_pyodide.io.jsinterop`.
"""

from __future__ import annotations

from typing import Any


def js_uint8array_copy(data: bytes | bytearray | memoryview) -> Any:
    """A new JS ``Uint8Array`` holding a copy of ``data``'s bytes (Pyodide only).

    One bulk copy out of the wasm heap; an empty ``data`` gives an empty array. The array stays
    valid whatever later happens to the Python buffer (or to the wasm heap under it)."""
    import js  # type: ignore[import-not-found]

    view = memoryview(data).cast("B")
    array = js.Uint8Array.new(len(view))
    array.assign(view)
    return array


__all__ = ["js_uint8array_copy"]
