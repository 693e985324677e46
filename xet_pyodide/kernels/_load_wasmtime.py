"""CPython loader: run ``xet_kernels.wasm`` on wasmtime (the only module importing wasmtime).

Copies go through a ``memoryview`` over the instance's linear memory (built from
``Memory.data_ptr`` with ctypes), so copying a buffer in or out is one ``memcpy`` instead of
wasmtime's per-call ``Memory.write``/``read`` conversions. The view is rebuilt whenever the
memory's base address or size changes (``memory.grow`` may move it).
"""

from __future__ import annotations

import ctypes
import importlib
from array import array
from collections.abc import Callable
from typing import Any

import wasmtime

from ..errors import XetKernelError
from ._instance import read_wasm_bytes
from ._wasm import WasmKernels
from .api import Buffer


class WasmtimeInstance:
    """:class:`~xet_pyodide.kernels._instance.Instance` over a wasmtime instance."""

    name = "wasmtime"

    def __init__(self, wasm: bytes) -> None:
        try:
            engine = wasmtime.Engine()
            self._store = wasmtime.Store(engine)
            module = wasmtime.Module(engine, wasm)
            instance = wasmtime.Instance(self._store, module, [])
        except wasmtime.WasmtimeError as exc:
            raise XetKernelError(f"cannot instantiate xet_kernels.wasm: {exc}") from exc
        self._exports = instance.exports(self._store)
        memory = self._exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self._memory = memory
        self._view = memoryview(b"")
        self._addr = 0
        self._calls: dict[str, Callable[..., int]] = {}

    def func(self, name: str) -> Callable[..., int]:
        f: Any = self._exports[name]
        store = self._store
        fast = _unchecked_caller(store, f)
        if fast is not None:
            return fast

        def call(*args: int) -> int:
            result = f(store, *args)
            return 0 if result is None else int(result)

        return call

    def refresh(self) -> None:
        store = self._store
        size = self._memory.data_len(store)
        addr = ctypes.addressof(self._memory.data_ptr(store).contents)
        if addr != self._addr or size != len(self._view):
            self._view.release()
            self._view = memoryview((ctypes.c_ubyte * size).from_address(addr)).cast("B")
            self._addr = addr

    def _mem(self) -> memoryview:
        # A stale view would point at freed memory: re-check the size (memory only moves when
        # it grows) on every access, it costs one cheap call.
        if self._memory.data_len(self._store) != len(self._view):
            self.refresh()
        return self._view

    def write(self, ptr: int, data: Buffer) -> None:
        mv = memoryview(data)
        self._mem()[ptr : ptr + mv.nbytes] = mv

    def write_many(self, ptr: int, views: list[memoryview]) -> None:
        mem = self._mem()
        for view in views:
            mem[ptr : ptr + len(view)] = view
            ptr += len(view)

    def read(self, ptr: int, n: int) -> bytes:
        return bytes(self._mem()[ptr : ptr + n])

    def read_into(self, ptr: int, out: memoryview) -> None:
        out[:] = self._mem()[ptr : ptr + len(out)]

    def memory_size(self) -> int:
        return self._memory.data_len(self._store)

    def copy_and_call(self, name: str, src: memoryview, dst: int, steps: array, nargs: int) -> None:
        f = self._calls.get(name)
        if f is None:
            f = self._calls[name] = self.func(name)
        width = 2 + nargs
        for i in range(0, len(steps), width):
            offset, length = steps[i], steps[i + 1]
            self._mem()[dst : dst + length] = src[offset : offset + length]
            f(*steps[i + 2 : i + width])


def _unchecked_caller(store: wasmtime.Store, f: wasmtime.Func) -> Callable[..., int] | None:
    """A caller through ``wasmtime_func_call_unchecked`` for an all-i32 export, or None.

    ``Func.__call__`` rebuilds the function type and converts every argument through ``Val``
    on each call: ~13 µs, paid per chunk by the decoders and the CAS server's validation. Our
    exports only take and return i32, so after checking the type once the arguments can go
    straight into a raw value array (~2 µs a call). That needs wasmtime-py internals (the raw
    bindings, ``Store._context``, ``Func._func``); if they are not there, the public call is
    used instead.
    """
    try:
        ffi: Any = importlib.import_module("wasmtime._bindings")
        ty = f.type(store)
        kinds = (*ty.params, *ty.results)
        if any(t != wasmtime.ValType.i32() for t in kinds) or len(ty.results) > 1:
            return None
        context = store._context()
        func_ref = ctypes.byref(f._func)
        call_unchecked = ffi.wasmtime_func_call_unchecked
        raw_array = ffi.wasmtime_val_raw_t * max(len(ty.params), len(ty.results), 1)
        trap_ptr = ctypes.POINTER(ffi.wasm_trap_t)
        error_from, trap_from = wasmtime.WasmtimeError._from_ptr, wasmtime.Trap._from_ptr
    except (AttributeError, ImportError, TypeError, ValueError):
        return None
    nparams, nresults = len(ty.params), len(ty.results)

    def call(*args: int) -> int:
        if len(args) != nparams:
            raise TypeError(f"expected {nparams} arguments, got {len(args)}")
        raw = raw_array()
        for i, a in enumerate(args):
            raw[i].i32 = a
        trap = trap_ptr()
        error = call_unchecked(context, func_ref, raw, len(raw), ctypes.byref(trap))
        if error:
            raise error_from(error)
        if trap:
            raise trap_from(trap)
        return raw[0].i32 if nresults else 0

    return call


def load() -> WasmKernels:
    """Instantiate the packaged kernels on wasmtime."""
    return WasmKernels(WasmtimeInstance(read_wasm_bytes()))
