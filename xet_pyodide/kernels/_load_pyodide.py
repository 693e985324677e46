"""Pyodide loader: run ``xet_kernels.wasm`` with the host's ``WebAssembly`` (via ``js``).

Inputs are copied with ``heap.subarray(ptr, ptr + n).assign(memoryview)`` and outputs with
``.to_bytes()``: one bulk copy each way. ``heap`` is a cached ``Uint8Array`` over the module's
memory (and ``heap.subarray`` its cached bound method), rebuilt by :meth:`JsInstance.refresh`
after ``xk_reserve`` (the only thing that grows memory, which detaches the previous
``ArrayBuffer``). Measured in Pyodide/Node: ~6 µs per copy call plus the copy itself, about half
the cost of building a fresh view every time; caching the bound method halves what is left.

:meth:`JsInstance.copy_and_call` runs its copy-then-call loop in JavaScript, reading the Python
buffers in place (``PyProxy.getBuffer``: views of Pyodide's memory): one Python→JS crossing per
batch instead of three per record.

Chromium refuses *synchronous* ``WebAssembly.Module`` compilation of non-trivial modules on the
main thread; :func:`load_sync` then raises :class:`~xet_pyodide.errors.XetKernelError` telling the
caller to ``await xet_pyodide.kernels.load_kernels()``, which uses :func:`load_async`
(``WebAssembly.instantiate``). Workers and Node compile synchronously without complaint.

The compiled ``WebAssembly.Module`` is kept (:func:`compiled_module`) and shared: the hashing
pool (:mod:`xet_pyodide.io.workers`) posts the same module to its workers, so a page compiles
the ``.wasm`` once at start-up.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Any

import js  # type: ignore[import-not-found]
from pyodide.code import run_js  # type: ignore[import-not-found]
from pyodide.ffi import JsException  # type: ignore[import-not-found]

from ..errors import XetKernelError
from ._instance import read_wasm_bytes
from ._wasm import WasmKernels
from .api import Buffer
from .jsbytes import js_uint8array_copy

# (exports, export name, src buffer proxy, dst, steps buffer proxy, nargs): see copy_and_call.
_COPY_AND_CALL_JS = """
(exports, name, srcProxy, dst, stepsProxy, nargs) => {
  const f = exports[name];
  const src = srcProxy.getBuffer("u8");
  let steps;
  try {
    steps = stepsProxy.getBuffer("i32");
    const s = src.data, p = steps.data, width = 2 + nargs;
    const heap = new Uint8Array(exports.memory.buffer);
    for (let i = 0; i < p.length; i += width) {
      heap.set(s.subarray(p[i], p[i] + p[i + 1]), dst);
      f(...p.subarray(i + 2, i + width));
    }
  } finally {
    src.release();
    if (steps) steps.release();
  }
}
"""


class JsInstance:
    """:class:`~xet_pyodide.kernels._instance.Instance` over a ``WebAssembly.Instance``."""

    name = "js"

    def __init__(self, instance: Any) -> None:
        self._exports = instance.exports
        self._memory = self._exports.memory
        self._heap = js.Uint8Array.new(self._memory.buffer)
        # The bound method, fetched once: looking ``subarray`` up on the proxy costs about as
        # much as calling it (Chromium: 3.1 µs per call uncached, 1.5 µs cached).
        self._subarray = self._heap.subarray
        self._copy_and_call = run_js(_COPY_AND_CALL_JS)

    def func(self, name: str) -> Callable[..., int]:
        f = getattr(self._exports, name)

        def call(*args: int) -> int:
            result = f(*args)
            return 0 if result is None else int(result)

        return call

    def write(self, ptr: int, data: Buffer) -> None:
        mv = memoryview(data)
        if mv.nbytes:
            self._subarray(ptr, ptr + mv.nbytes).assign(mv)

    def write_many(self, ptr: int, views: list[memoryview]) -> None:
        # One subarray().assign() per view. A JavaScript loop over the list (PyProxy get +
        # getBuffer + destroy per item) cost ~2-3x more on the page: 0.35 s vs 0.13-0.19 s
        # per 8,444 chunks in bench/browser.py --profile.
        subarray = self._subarray
        for view in views:
            n = len(view)
            if n:
                subarray(ptr, ptr + n).assign(view)
                ptr += n

    def read(self, ptr: int, n: int) -> bytes:
        if n == 0:
            return b""
        return self._subarray(ptr, ptr + n).to_bytes()

    def read_into(self, ptr: int, out: memoryview) -> None:
        if len(out):
            self._subarray(ptr, ptr + len(out)).assign_to(out)

    def memory_size(self) -> int:
        return int(self._memory.buffer.byteLength)

    def copy_and_call(self, name: str, src: memoryview, dst: int, steps: array, nargs: int) -> None:
        # src and steps reach JavaScript as PyProxies that live for this call only
        self._copy_and_call(self._exports, name, src, dst, steps, nargs)

    def refresh(self) -> None:
        if self._heap.byteLength != self._memory.buffer.byteLength:
            self._heap = js.Uint8Array.new(self._memory.buffer)
            self._subarray = self._heap.subarray


#: The kernels' compiled ``WebAssembly.Module``: compiled once per interpreter and shared — the
#: page's instance is made from it and the hashing pool posts it to its workers (a ``Module``
#: is structured-cloneable), so start-up compiles the ``.wasm`` once, not once for the page and
#: again for the pool.
_module: Any = None


async def compiled_module() -> Any:
    """The kernels' ``WebAssembly.Module``, compiled asynchronously on first use (Chromium's
    main thread refuses synchronous compilation of non-trivial modules)."""
    global _module
    if _module is None:
        try:
            _module = await js.WebAssembly.compile(js_uint8array_copy(read_wasm_bytes()))
        except JsException as exc:
            raise XetKernelError(f"cannot compile xet_kernels.wasm: {exc}") from exc
    return _module


def load_sync() -> WasmKernels:
    """Instantiate synchronously, compiling first unless :func:`compiled_module` already did
    (fine in workers and Node, may be refused by Chromium's main thread)."""
    global _module
    try:
        if _module is None:
            _module = js.WebAssembly.Module.new(js_uint8array_copy(read_wasm_bytes()))
        instance = js.WebAssembly.Instance.new(_module, js.Object.new())
    except JsException as exc:
        raise XetKernelError(
            "synchronous WebAssembly compilation was refused by this runtime "
            f"({exc}); call `await xet_pyodide.kernels.load_kernels()` once before using "
            "get_kernels()"
        ) from exc
    return WasmKernels(JsInstance(instance), warm_up=True)


async def load_async() -> WasmKernels:
    """Instantiate with ``await WebAssembly.instantiate`` over :func:`compiled_module` (works
    everywhere)."""
    module = await compiled_module()
    try:
        instance = await js.WebAssembly.instantiate(module, js.Object.new())
    except JsException as exc:
        raise XetKernelError(f"cannot instantiate xet_kernels.wasm: {exc}") from exc
    return WasmKernels(JsInstance(instance), warm_up=True)
