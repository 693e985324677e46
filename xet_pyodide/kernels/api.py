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
from typing import NamedTuple, Protocol, runtime_checkable

Buffer = bytes | bytearray | memoryview

#: Top 16 bits of the rolling gear hash must be zero at a chunk-boundary candidate.
GEAR_MASK = 0xFFFF_0000_0000_0000


class RecordBatch(NamedTuple):
    """What :meth:`Kernels.decode_records` decoded."""

    #: Bytes of the input used: the whole records decoded.
    consumed: int
    #: Decoded size of each chunk, in order (chunk ``k`` follows chunks ``0..k-1`` in ``out``).
    sizes: list[int]
    #: When decoding stopped because the next chunk did not fit in ``out``: its decoded size
    #: (give more room and call again from ``consumed``); else 0.
    need: int
    #: Keyed BLAKE3 digests of the chunks (32 bytes each) when a key was given, else ``b""``.
    digests: bytes


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

    def popcount_histograms(self, data: Buffer) -> list[list[int]]:
        """For each byte position modulo 4, the histogram of popcount(byte) (9 bins): the
        statistic of hf_xet's BG4 predictor (``core.compression.bg4_recommended``)."""
        ...

    def encode_record(self, data: Buffer, scheme: int) -> bytes:
        """The xorb chunk record (8-byte header + payload) of one chunk (≤ 128 KiB) under
        ``scheme`` (0 raw, 1 LZ4, 2 byte-grouped LZ4), as hf_xet writes it: one LZ4 frame
        with independent blocks and no checksums, stored raw instead unless strictly
        smaller than the chunk."""
        ...

    def encode_records(
        self,
        chunks: Sequence[Buffer],
        schemes: Buffer,
        out: bytearray,
        crc: int | None = None,
    ) -> int | None:
        """Append to ``out`` the records of consecutive chunks, ``schemes[k]`` (one byte per
        chunk) for ``chunks[k]``: exactly the bytes of one :meth:`encode_record` per chunk,
        in one kernel call per ~512 KiB of chunks (upload packing). With ``crc`` (a
        CRC-64/NVME so far, 0 to start), returns it continued over the appended records;
        else None."""
        ...

    def decode_records(
        self,
        data: Buffer,
        max_chunks: int,
        out: memoryview,
        key: bytes | None = None,
        first_index: int = 0,
    ) -> RecordBatch:
        """Decode the xorb chunk records at the start of ``data`` into ``out``, back to back.

        Stops after ``max_chunks`` records, at a record not wholly inside ``data`` (a block of
        a stream may end inside one) or at a chunk that does not fit in what is left of
        ``out`` (a writable byte buffer). Each record is checked as the core's strict reader
        does (version 0, known scheme, sizes within xet-core's limits, raw payloads of the
        stated size, valid LZ4 frames) and must decode to exactly its stated size; anything
        else raises ``XetFormatError`` naming the record (``first_index`` + its position).
        With ``key``, the decoded chunks are also hashed (keyed BLAKE3) in the same pass.
        """
        ...

    def crc64_nvme(self, data: Buffer, crc: int = 0) -> int:
        """CRC-64/NVME of ``data``; pass a previous result as ``crc`` to continue a stream
        (``crc64_nvme(b, crc64_nvme(a)) == crc64_nvme(a + b)``)."""
        ...

    def xxh32(self, data: Buffer, seed: int = 0) -> int:
        """xxHash32 (used by the LZ4 frame format for header and content checksums)."""
        ...

    def sha256_blocks(self, state: bytes, data: Buffer) -> bytes:
        """The SHA-256 compression function over ``data`` (a whole number of 64-byte blocks),
        starting from the 32-byte chaining value ``state`` (eight big-endian words, as in a
        digest); returns the new chaining value. Padding is the caller's: see
        :class:`xet_pyodide.kernels.sha256.KernelSha256`."""
        ...
