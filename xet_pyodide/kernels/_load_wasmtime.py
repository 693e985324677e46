"""CPython loader: run ``xet_kernels.wasm`` on wasmtime (the only module importing wasmtime).

Copies go through a ``memoryview`` over the instance's linear memory (built from
``Memory.data_ptr`` with ctypes), so copying a buffer in or out is one ``memcpy`` instead of
wasmtime's per-call ``Memory.write``/``read`` conversions. The view is rebuilt whenever the
memory's base address or size changes (``memory.grow`` may move it).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import wasmtime

from ..errors import XetKernelError
from ._wasm import WasmKernels, read_wasm_bytes
from .api import Buffer


class WasmtimeInstance:
    """:class:`~xet_pyodide.kernels._wasm.Instance` over a wasmtime instance."""

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

    def func(self, name: str) -> Callable[..., int]:
        f: Any = self._exports[name]
        store = self._store

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

    def read(self, ptr: int, n: int) -> bytes:
        return bytes(self._mem()[ptr : ptr + n])

    def memory_size(self) -> int:
        return self._memory.data_len(self._store)


def load() -> WasmKernels:
    """Instantiate the packaged kernels on wasmtime."""
    return WasmKernels(WasmtimeInstance(read_wasm_bytes()))
