"""Smoke checks that run unchanged in CPython, Pyodide-in-Node and Pyodide-in-Chromium."""

from __future__ import annotations

import sys


def environment() -> dict:
    """Where we are running and which kernel backend the package picked."""
    import xet_pyodide
    from xet_pyodide.kernels import get_kernels

    return {
        "platform": sys.platform,
        "python": list(sys.version_info[:2]),
        "version": xet_pyodide.__version__,
        "kernels": get_kernels().name,
    }


async def blake3_of(text: str, key_hex: str) -> str:
    """Keyed BLAKE3 of ``text`` through the active kernels (async: may load the wasm first)."""
    from xet_pyodide import kernels

    loader = getattr(kernels, "load_kernels", None)
    k = await loader() if loader is not None else kernels.get_kernels()
    return k.blake3_keyed(text.encode(), bytes.fromhex(key_hex)).hex()
