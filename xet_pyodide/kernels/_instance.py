"""What a runtime gives the WebAssembly kernels: the packaged ``xet_kernels.wasm`` and the
:class:`Instance` contract — one instantiated module plus "copy bytes in", "copy bytes out"
and "call export".

A loader (``_load_wasmtime.py`` under CPython, ``_load_pyodide.py`` over ``js.WebAssembly``)
reads the module with :func:`read_wasm_bytes` and implements :class:`Instance`;
:class:`~xet_pyodide.kernels._wasm.WasmKernels` runs every kernel call (its arena layout,
batching and error codes) over any such instance.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from importlib import resources
from typing import Protocol

from ..errors import XetKernelError
from .api import Buffer

WASM_FILE = "xet_kernels.wasm"


class Instance(Protocol):
    """What :class:`WasmKernels` needs from a runtime: one instance of ``xet_kernels.wasm``."""

    #: Short runtime name, e.g. ``"wasmtime"`` or ``"js"``.
    name: str

    def func(self, name: str) -> Callable[..., int]:
        """The export ``name`` as a Python callable taking and returning ints (i32 results
        come back signed)."""
        ...

    def write(self, ptr: int, data: Buffer) -> None:
        """Copy ``data`` (a 1-D byte buffer) to linear memory at ``ptr``."""
        ...

    def write_many(self, ptr: int, views: list[memoryview]) -> None:
        """Copy 1-D byte buffers back to back to linear memory from ``ptr``."""
        ...

    def read(self, ptr: int, n: int) -> bytes:
        """Copy ``n`` bytes of linear memory starting at ``ptr``."""
        ...

    def read_into(self, ptr: int, out: memoryview) -> None:
        """Copy ``len(out)`` bytes of linear memory starting at ``ptr`` into ``out`` (a
        writable 1-D byte buffer): no intermediate ``bytes``."""
        ...

    def memory_size(self) -> int:
        """Current size of linear memory in bytes."""
        ...

    def refresh(self) -> None:
        """Linear memory may have grown (and moved): rebuild any cached view of it."""
        ...

    def copy_and_call(self, name: str, src: memoryview, dst: int, steps: array, nargs: int) -> None:
        """Many copies and calls in one: ``steps`` (``array('i')``) holds records of
        ``2 + nargs`` ints ``(offset, length, arg_1 .. arg_nargs)``; for each record, copy
        ``src[offset:offset + length]`` to ``dst``, then call the export ``name`` with the
        args. The export must not grow memory. (Pyodide does the loop in JavaScript: one
        crossing instead of three per record.)"""
        ...


def read_wasm_bytes() -> bytes:
    """The packaged ``xet_kernels.wasm`` (package data of ``xet_pyodide.kernels``)."""
    try:
        return resources.files(__package__).joinpath(WASM_FILE).read_bytes()
    except (FileNotFoundError, OSError) as exc:
        raise XetKernelError(
            f"{WASM_FILE} is missing from xet_pyodide/kernels: run `bash scripts/build_kernels.sh` "
            "(or set XET_PYODIDE_KERNELS=reference for the slow pure-Python backend)"
        ) from exc


__all__ = ["WASM_FILE", "Instance", "read_wasm_bytes"]
