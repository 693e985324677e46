"""Python bytes → JavaScript bytes (Pyodide only; ``js`` is imported on call): into a new
``Uint8Array`` (:func:`js_uint8array_copy`) or into a span of an existing JS buffer
(:func:`js_copy_into`). Each is one bulk copy out of the wasm heap.

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


def js_copy_into(buffer: Any, offset: int, data: bytes | bytearray | memoryview) -> None:
    """Copy ``data``'s bytes into the JS ``ArrayBuffer``/``SharedArrayBuffer`` ``buffer`` at
    byte ``offset`` (Pyodide only). An empty ``data`` copies nothing; a span past the end of
    ``buffer`` raises (JavaScript's ``RangeError``)."""
    view = memoryview(data).cast("B")
    if len(view):
        import js  # type: ignore[import-not-found]

        js.Uint8Array.new(buffer, offset, len(view)).assign(view)


__all__ = ["js_copy_into", "js_uint8array_copy"]
