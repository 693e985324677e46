"""The server's per-byte work on native libraries (CPython only): keyed BLAKE3 from the
``blake3`` package (SIMD) and LZ4 blocks from ``lz4``, for validating uploaded xorbs and for
reading stored files back (the commit's sha256 proof).

Why: the protocol core runs its per-byte work on the wasm kernels under wasmtime, which must
stay so for Pyodide, but the server is CPython-only and its CPU is taken from the browser on
the same machine. Measured per chunk-record byte (bench/server_costs.py): keyed BLAKE3 of
64 KiB chunks ~0.15 CPU-s per GiB natively against ~0.5 on the kernels, and raw records are
hashed where they lie in the body (the kernels copy every chunk into wasm memory and out).

Results are the kernels' results: the same keyed BLAKE3, and LZ4 blocks decoded by liblz4's
``LZ4_decompress_safe``, which accepts a subset of what the kernels' decoder accepts (it is
stricter about the end of a block) and decodes it to the same bytes. A block liblz4 refuses is
handed to the kernels, so nothing the kernels accept is refused here; their error, if any, is
the one raised. Frames are parsed by the core's own LZ4 frame reader (:mod:`lz4frame`), so
frame-level checks and limits are the same code. tests/cpython/test_server_native.py compares
both on the conformance vectors and on mutated records.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import blake3
import lz4.block

from xet_pyodide.core.hashes import DATA_KEY
from xet_pyodide.core.xorb import HEADER, RECORD_HEADER_LEN, Scheme, check_header
from xet_pyodide.errors import XetFormatError
from xet_pyodide.kernels import get_kernels, lz4frame
from xet_pyodide.kernels.api import Buffer, Kernels

#: Which implementation does the server's per-byte work (logged at start-up, in stats).
NAME = f"native (blake3 {blake3.__version__}, lz4 {lz4.library_version_string()})"


class _Blocks:
    """The two block functions the LZ4 frame reader calls, for :func:`lz4frame.decompress`:
    LZ4 blocks natively (the kernels' decoder for any block liblz4 refuses), header and block
    checksums on the kernels (xxHash32 of a few bytes; header checksums are memoized)."""

    def __init__(self, kernels: Kernels) -> None:
        self.kernels = kernels

    def lz4_decompress_block(self, data: Buffer, max_output: int) -> bytes:
        try:
            return lz4.block.decompress(data, uncompressed_size=max_output)
        except (lz4.block.LZ4BlockError, ValueError):
            return self.kernels.lz4_decompress_block(data, max_output)

    def xxh32(self, data: Buffer, seed: int = 0) -> int:
        return self.kernels.xxh32(data, seed)


def decode_record(
    scheme: int, payload: memoryview, size: int, kernels: Kernels | None = None
) -> Buffer:
    """The chunk of one record whose header was checked (``check_header``): a view of the
    payload itself for a raw record (no copy), else the decoded bytes. Raises
    :class:`XetFormatError` when the payload is not a valid encoding of ``size`` bytes."""
    if scheme == Scheme.NONE:
        return payload
    k = kernels or get_kernels()
    out = lz4frame.decompress(payload, size, _Blocks(k))  # type: ignore[arg-type]
    if scheme == Scheme.BG4_LZ4:
        out = k.bg4_regroup(out)
    if len(out) != size:
        raise XetFormatError(f"chunk decodes to {len(out)} bytes, its header says {size}")
    return out


def iter_chunks(records: Buffer, count: int | None = None) -> Iterator[Buffer]:
    """The chunks of a run of whole chunk records (``count`` of them, or all), in order.
    Headers are checked as the core's strict reader does; a record that is cut short or
    malformed raises :class:`XetFormatError`."""
    view = memoryview(records).cast("B")
    kernels = get_kernels()
    pos = n = 0
    while pos < len(view) if count is None else n < count:
        if len(view) - pos < RECORD_HEADER_LEN:
            raise XetFormatError(f"chunk record {n} is cut short")
        scheme, compressed, size = check_header(*HEADER.unpack_from(view, pos))
        start = pos + RECORD_HEADER_LEN
        if compressed > len(view) - start:
            raise XetFormatError(f"chunk record {n} is cut short")
        pos = start + compressed
        n += 1
        yield decode_record(scheme, view[start:pos], size, kernels)


def hash_records(body: Buffer, record_ends: Sequence[int]) -> tuple[bytes, list[int]]:
    """Keyed BLAKE3 digests (32 bytes each, back to back) and sizes of the chunks of the
    records of ``body`` ending at ``record_ends`` (as :func:`~xet_pyodide.core.xorb.scan_records`
    found them: headers already checked)."""
    view = memoryview(body).cast("B")
    kernels = get_kernels()
    digests = bytearray()
    sizes: list[int] = []
    pos = 0
    key = DATA_KEY
    for end in record_ends:
        scheme, _, size = check_header(*HEADER.unpack_from(view, pos))
        chunk = decode_record(scheme, view[pos + RECORD_HEADER_LEN : end], size, kernels)
        digests += blake3.blake3(chunk, key=key).digest()
        sizes.append(size)
        pos = end
    return bytes(digests), sizes
