"""The kernel interface: every per-byte operation the package performs goes through this.

Two implementations exist:

* the WebAssembly kernels (``xet_kernels.wasm``, C sources in ``csrc/``), loaded with
  ``js.WebAssembly`` under Pyodide and with ``wasmtime`` under CPython;
* a slow pure-Python/reference-library backend (``reference.py``) used to cross-check them.

Inputs are any bytes-like object (``bytes``, ``bytearray``, ``memoryview``); outputs are
``bytes`` unless stated. Methods are batch-oriented on purpose: one call per block or per
batch of chunks, never one call per byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

Buffer = bytes | bytearray | memoryview

#: Top 16 bits of the rolling gear hash must be zero at a chunk-boundary candidate.
GEAR_MASK = 0xFFFF_0000_0000_0000


@runtime_checkable
class Kernels(Protocol):
    """Batch kernels. See module docstring."""

    #: "wasm" or "reference" (plus loader detail, e.g. "wasm/wasmtime").
    name: str

    def gear_scan(self, data: Buffer, state: int = 0) -> tuple[list[int], int]:
        """Run the xet gear rolling hash over ``data`` starting from rolling ``state``.

        ``h = ((h << 1) + GEAR[b]) mod 2**64`` for every byte. Returns ``(candidates, state)``:
        the offsets ``i`` (relative to ``data``) after whose byte ``h & GEAR_MASK == 0``, in
        increasing order, and the rolling state after the last byte. Because ``h`` only depends
        on the last 64 bytes, scanning ``prev63 + block`` from state 0 and dropping candidates
        below 63 gives the same candidates as a continuous scan; this is what lets blocks be
        scanned independently (and in parallel).
        """
        ...

    def blake3_keyed(self, data: Buffer, key: bytes) -> bytes:
        """Keyed BLAKE3 (32-byte key, 32-byte output) of one message."""
        ...

    def blake3_keyed_many(self, data: Buffer, lengths: Sequence[int], key: bytes) -> bytes:
        """Keyed BLAKE3 of consecutive messages: ``data`` is split by ``lengths`` (which must sum
        to ``len(data)``); returns the concatenation of the 32-byte digests, in order."""
        ...

    def lz4_compress_block(self, data: Buffer) -> bytes:
        """LZ4 *block* format (no frame) compression of ``data`` (≤ 4 MiB)."""
        ...

    def lz4_decompress_block(self, data: Buffer, max_output: int) -> bytes:
        """Decompress one LZ4 block. Raises ``XetFormatError`` on any malformed input: truncated
        sequences, offsets before the start of the output, output longer than ``max_output``."""
        ...

    def bg4_split(self, data: Buffer) -> bytes:
        """Byte grouping by 4: ``data[0::4] + data[1::4] + data[2::4] + data[3::4]``."""
        ...

    def bg4_regroup(self, data: Buffer) -> bytes:
        """Inverse of :meth:`bg4_split`."""
        ...

    def crc64_nvme(self, data: Buffer, crc: int = 0) -> int:
        """CRC-64/NVME of ``data``; pass a previous result as ``crc`` to continue a stream
        (``crc64_nvme(b, crc64_nvme(a)) == crc64_nvme(a + b)``)."""
        ...

    def xxh32(self, data: Buffer, seed: int = 0) -> int:
        """xxHash32 (used by the LZ4 frame format for header and content checksums)."""
        ...
