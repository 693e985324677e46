"""The file SHA-256 of an upload: computed here, skipped, given, or computed elsewhere.

``sha256=`` accepts :data:`COMPUTE` (hashlib, in the same pass as chunking), :data:`SKIP` (no
metadata extension in the shard, result ``None``), a known digest (32 bytes or 64 hex digits),
or an *awaitable* resolving to a digest (bytes, hex, or a JS ``ArrayBuffer`` through a
``JsProxy``) — e.g. a ``crypto.subtle.digest`` Promise (native, much faster than hashlib inside
Pyodide), the SHA-256 the worker pool chains from the blocks its workers read for the upload
(``Sha256Chain.digest``, :mod:`xet_pyodide.io.pool_sha`: what a page's ``File`` upload uses
by default), or the pool's side worker digesting a ``Blob`` in parallel with the chunking
(``WorkerPool.sha256_blob``). The last two are off the page's thread.

:data:`HASHER` picks what computes a ``COMPUTE`` digest here, in the chunking pass:
``"hashlib"`` (the default) or ``"kernel"`` (:class:`~xet_pyodide.kernels.sha256.KernelSha256`,
the WebAssembly compression function), for measuring one against the other
(``bench/peers.py --sha256-hasher``; docs/browser.md, "Measuring CPU"). Both give the same
digest (tests/cpython/test_kernels.py).

hf_xet stores 32 zero bytes instead of the SHA-256 of an empty file; we do the same when the
digest is ours to compute.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from typing import Any

Buffer = bytes | bytearray | memoryview

#: What computes a ``COMPUTE`` digest: "hashlib" or "kernel" (see the module docstring).
HASHER = "hashlib"


def _new_hasher() -> Any:
    if HASHER == "kernel":
        from ..kernels.sha256 import KernelSha256

        return KernelSha256()
    if HASHER != "hashlib":
        raise ValueError(f"HASHER must be 'hashlib' or 'kernel', not {HASHER!r}")
    return hashlib.sha256()


class Sha256Mode:
    """Sentinels for the ``sha256`` argument."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


COMPUTE = Sha256Mode("COMPUTE")
SKIP = Sha256Mode("SKIP")
_ERROR = "sha256 must be COMPUTE, SKIP, a 32-byte digest, 64 hex digits or an awaitable"


def _digest(value: Any) -> bytes | None:
    """A 32-byte digest from bytes-like, hex text or a JS buffer proxy; None if not one."""
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value.strip())
        except ValueError:
            return None
    elif not isinstance(value, (bytes, bytearray, memoryview)) and hasattr(value, "to_bytes"):
        value = value.to_bytes()  # JsProxy of an ArrayBuffer / typed array
    if isinstance(value, (bytes, bytearray, memoryview)) and len(value) == 32:
        return bytes(value)
    return None


def parse_sha256(value: object) -> Sha256Mode | bytes | Any:
    """Validate a ``sha256=`` argument (see module docstring)."""
    if value is None:
        return COMPUTE
    if isinstance(value, Sha256Mode) or inspect.isawaitable(value):
        return value
    if isinstance(value, str) and value.strip().lower() in ("compute", "skip"):
        return COMPUTE if value.strip().lower() == "compute" else SKIP
    digest = _digest(value)
    if digest is None:
        raise ValueError(_ERROR)
    return digest


class Sha256Tracker:
    """Feeds the data when computing; resolves the final value in :meth:`finish`."""

    def __init__(self, value: object) -> None:
        self.mode = parse_sha256(value)
        self._hasher = _new_hasher() if self.mode is COMPUTE else None

    def update(self, data: Buffer) -> None:
        if self._hasher is not None:
            self._hasher.update(data)

    def discard(self) -> None:
        """The file was abandoned: stop a digest still being computed elsewhere (a task or
        future is cancelled, a coroutine closed) so nothing is left unawaited."""
        self._hasher = None
        mode = self.mode
        if isinstance(mode, asyncio.Future):
            mode.cancel()
            if mode.done() and not mode.cancelled():
                mode.exception()  # retrieved: an abandoned digest's error is not logged
        elif inspect.iscoroutine(mode):
            mode.close()

    async def finish(self, size: int) -> tuple[str | None, bytes | None]:
        """``(hex digest for the result, digest for the shard)``; both None when skipped."""
        mode = self.mode
        if self._hasher is not None:
            digest = self._hasher.digest()
            return digest.hex(), digest if size else bytes(32)
        if mode is SKIP:
            return None, None
        if isinstance(mode, bytes):
            return mode.hex(), mode
        digest = _digest(await mode)
        if digest is None:
            raise ValueError("the awaited sha256 did not resolve to a 32-byte digest")
        return digest.hex(), digest if size else bytes(32)


__all__ = ["COMPUTE", "SKIP", "Sha256Mode", "Sha256Tracker", "parse_sha256"]
