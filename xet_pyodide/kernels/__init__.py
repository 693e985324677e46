"""Per-byte kernels (layer 1). Use :func:`get_kernels`; see :mod:`.api` for the interface.

The default backend is the WebAssembly module ``xet_kernels.wasm`` (built from ``csrc/`` by
``scripts/build_kernels.sh``), run by wasmtime under CPython and by the host's ``WebAssembly``
under Pyodide. ``XET_PYODIDE_KERNELS=reference`` selects the slow reference backend instead
(``=wasm`` insists on the wasm one; the default ``auto`` is the same as ``wasm``).

Under Pyodide on a browser's main thread, synchronous compilation may be refused: call
``await load_kernels()`` once (e.g. at start-up) and :func:`get_kernels` returns that instance
from then on.
"""

from __future__ import annotations

import atexit
import os
import sys

from ..errors import XetKernelError
from .api import GEAR_MASK, Kernels
from .reference import ReferenceKernels

_active: Kernels | None = None


def _choice() -> str:
    choice = os.environ.get("XET_PYODIDE_KERNELS", "auto").strip().lower() or "auto"
    if choice not in ("auto", "wasm", "reference"):
        raise XetKernelError(
            f"XET_PYODIDE_KERNELS={choice!r}: expected 'auto', 'wasm' or 'reference'"
        )
    return choice


def get_kernels() -> Kernels:
    """Return the process-wide kernel backend, loading it on first use.

    Raises :class:`~xet_pyodide.errors.XetKernelError` if the .wasm is missing (run
    ``bash scripts/build_kernels.sh``) or, in a browser main thread, if synchronous compilation
    is refused (``await load_kernels()`` first).
    """
    global _active
    if _active is None:
        if _choice() == "reference":
            _active = ReferenceKernels()
        elif sys.platform == "emscripten":
            from ._load_pyodide import load_sync

            _active = load_sync()
        else:
            from ._load_wasmtime import load

            _active = load()
            # Free the wasmtime objects while wasmtime's own module is still intact (otherwise
            # interpreter shutdown prints "Exception ignored in Managed.__del__").
            atexit.register(reset_kernels)
    return _active


async def load_kernels() -> Kernels:
    """Like :func:`get_kernels`, but compiles the module asynchronously under Pyodide.

    Await this once in browser code before anything calls :func:`get_kernels`.
    """
    global _active
    if _active is None:
        if _choice() != "reference" and sys.platform == "emscripten":
            from ._load_pyodide import load_async

            _active = await load_async()
        else:
            return get_kernels()
    return _active


def reset_kernels() -> None:
    """Forget the loaded backend (tests switch backends with ``XET_PYODIDE_KERNELS``)."""
    global _active
    _active = None


__all__ = [
    "GEAR_MASK",
    "Kernels",
    "ReferenceKernels",
    "get_kernels",
    "load_kernels",
    "reset_kernels",
]
