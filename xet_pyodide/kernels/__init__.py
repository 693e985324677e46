"""Per-byte kernels (layer 1). Use :func:`get_kernels`; see :mod:`.api` for the interface."""

from __future__ import annotations

import os

from .api import GEAR_MASK, Kernels
from .reference import ReferenceKernels

_active: Kernels | None = None


def get_kernels() -> Kernels:
    """Return the process-wide kernel backend.

    ``XET_PYODIDE_KERNELS=reference`` forces the slow reference backend (for cross-checks).
    The WebAssembly backend replaces the reference as the default once it is built.
    """
    global _active
    if _active is None:
        choice = os.environ.get("XET_PYODIDE_KERNELS", "auto")
        _active = ReferenceKernels() if choice in ("reference", "auto") else ReferenceKernels()
    return _active


__all__ = ["GEAR_MASK", "Kernels", "ReferenceKernels", "get_kernels"]
