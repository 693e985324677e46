"""Handing Python data to JavaScript (Pyodide): plain values, byte buffers, user callbacks.

A Python ``dict`` passed to a JS function arrives as a ``PyProxy`` that JS code cannot read
like an object (and that leaks unless destroyed). When the callback is a ``JsProxy`` we convert
the payload to a JS object first; Python callables get the dict unchanged.

Byte buffers are copied instead: :func:`js_uint8array_copy` gives JS its own ``Uint8Array``,
which stays valid whatever later happens to the Python buffer (or to the wasm heap under it),
and :func:`js_copy_into` fills a span of a JS buffer JS already has; their home is
:mod:`xet_pyodide.kernels.jsbytes` (the kernel loader needs them too).
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

from ..kernels.jsbytes import js_copy_into, js_uint8array_copy


def is_js_object(obj: Any) -> bool:
    """True for objects handed to us by JavaScript (Pyodide ``JsProxy`` family)."""
    return sys.platform == "emscripten" and type(obj).__module__ in (
        "pyodide.ffi",
        "_pyodide._core_docs",
    )


def to_js_value(value: Any) -> Any:
    """Deep-convert dicts/lists to JS objects/arrays under Pyodide; identity elsewhere."""
    if sys.platform != "emscripten":
        return value
    import js  # type: ignore[import-not-found]
    from pyodide.ffi import to_js  # type: ignore[import-not-found]

    return to_js(value, dict_converter=js.Object.fromEntries)


def js_array() -> Any:
    """A new, empty JS ``Array`` (Pyodide only): a list JS code can take as it is, e.g. the
    transfer list of :func:`post_message`."""
    import js  # type: ignore[import-not-found]

    return js.Array.new()


def post_message(target: Any, message: dict[str, Any], transfer: Any = None) -> None:
    """``target.postMessage(message, transfer)`` (a worker, a port): ``message`` converted
    like :func:`to_js_value` (JS objects inside it are passed as they are), ``transfer`` a JS
    array of its ``ArrayBuffer`` s to move rather than copy."""
    if transfer is None:
        target.postMessage(to_js_value(message))
    else:
        target.postMessage(to_js_value(message), transfer)


async def invoke_callback(callback: Any, payload: Any) -> None:
    """Call ``callback(payload)``; await the result if it is awaitable (coroutine, JS Promise)."""
    arg = to_js_value(payload) if is_js_object(callback) else payload
    result = callback(arg)
    if inspect.isawaitable(result):
        await result


__all__ = [
    "invoke_callback",
    "is_js_object",
    "js_array",
    "js_copy_into",
    "js_uint8array_copy",
    "post_message",
    "to_js_value",
]
