"""Incremental SHA-256 on the kernels' compression function (``xk_sha256_blocks``).

The kernel runs where there is no Python: the pool's workers chain a ``File`` upload's
SHA-256 block by block from the shared buffer (``web/xet_worker.mjs``, op ``sha256blocks``;
the page keeps the chain and pads it: :class:`~xet_pyodide.io.pool_sha.Sha256Chain`), and the
side worker digests a whole ``Blob`` (op ``sha256``; it pads the message itself).
:class:`KernelSha256` is the same padding in Python, with hashlib's interface: it checks the
kernel in every runtime (tests) and measures it (``bench/kernels``). Where the page computes a
SHA-256 itself (no pool, ``upload_bytes`` without WebCrypto, CPython) it stays ``hashlib``: in
Chromium the kernel is only ~5 % faster than Pyodide's hashlib (0.48 vs 0.46 GB/s), in Node no
faster; under CPython hashlib is OpenSSL. In a 1 GiB upload in Chromium it saved ~5 % of the
page thread's CPU, inside the noise (``session.sha256.HASHER = "kernel"``; docs/browser.md,
"Measuring CPU").
"""

from __future__ import annotations

import struct

from . import get_kernels
from .api import Buffer, Kernels

#: The SHA-256 initial chaining value (FIPS 180-4 §5.3.3).
SHA256_IV = struct.pack(
    ">8I",
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
    0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
)  # fmt: skip


class KernelSha256:
    """``hashlib.sha256``-like hasher whose compression runs in the kernels. Keeps the chaining
    value, the partial last block (< 64 bytes) and the message length; pads in :meth:`digest`.
    Whole blocks of an :meth:`update` go to the kernel without an extra copy here."""

    name = "sha256"
    digest_size = 32
    block_size = 64

    def __init__(self, kernels: Kernels | None = None, data: Buffer = b"") -> None:
        self._k = kernels or get_kernels()
        self._state = SHA256_IV
        self._pending = b""
        self._length = 0
        if data:
            self.update(data)

    def update(self, data: Buffer) -> None:
        mv = memoryview(data).cast("B")
        self._length += len(mv)
        if self._pending:
            fill = min(64 - len(self._pending), len(mv))
            self._pending += mv[:fill]
            mv = mv[fill:]
            if len(self._pending) < 64:
                return
            self._state = self._k.sha256_blocks(self._state, self._pending)
            self._pending = b""
        whole = len(mv) - len(mv) % 64
        if whole:
            self._state = self._k.sha256_blocks(self._state, mv[:whole])
        self._pending = bytes(mv[whole:])

    def digest(self) -> bytes:
        # 0x80, zeros up to 56 mod 64, then the bit length as a big-endian u64 (§5.1.1).
        tail = self._pending + b"\x80" + bytes((55 - len(self._pending)) % 64)
        tail += struct.pack(">Q", (self._length * 8) & 0xFFFF_FFFF_FFFF_FFFF)
        return self._k.sha256_blocks(self._state, tail)

    def hexdigest(self) -> str:
        return self.digest().hex()

    def copy(self) -> KernelSha256:
        other = KernelSha256(self._k)
        other._state, other._pending, other._length = self._state, self._pending, self._length
        return other


__all__ = ["SHA256_IV", "KernelSha256"]
