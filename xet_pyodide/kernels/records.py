"""Chunk records at the kernels' level: the 8-byte header, its checks, the payload codec, and a
record-at-a-time writer and reader built from the block kernels.

A xorb body is a run of chunk records, each an 8-byte header
``version u8 | compressed_size u24 | scheme u8 | uncompressed_size u24`` followed by the payload
(raw, an LZ4 frame, or an LZ4 frame of the byte-grouped chunk). The wasm kernels encode and
decode records in one call each; this module is the same work in Python over a ``Kernels``
object's block functions — the reference kernels' ``encode_record``/``decode_records``, and
what the wasm ones are checked against. It sits here, below :mod:`xet_pyodide.core.xorb` (which
re-exports the header names), so that no kernel module imports the core.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from ..errors import XetFormatError
from . import lz4frame
from .api import Buffer, Kernels, RecordBatch

RECORD_HEADER_LEN = 8
#: Reader limits of xet-core: uncompressed chunk size and compressed payload size.
MAX_CHUNK_UNCOMPRESSED = 128 * 1024
MAX_CHUNK_COMPRESSED = 2 * MAX_CHUNK_UNCOMPRESSED

HEADER = struct.Struct("<II")


class Scheme(IntEnum):
    """Compression scheme byte of a chunk record header."""

    NONE = 0
    LZ4 = 1
    BG4_LZ4 = 2


def record_header(scheme: int, compressed_size: int, uncompressed_size: int) -> bytes:
    """The 8-byte header of a chunk record (format version 0)."""
    if not (0 <= compressed_size < 1 << 24 and 0 <= uncompressed_size < 1 << 24):
        raise ValueError("chunk record sizes must fit in 24 bits")
    return HEADER.pack(compressed_size << 8, (uncompressed_size << 8) | int(scheme))


def check_header(word0: int, word1: int) -> tuple[int, int, int]:
    """``(scheme, compressed size, uncompressed size)`` of a record header given as its two
    little-endian u32 words; raises :class:`XetFormatError` naming the first problem (the
    caller says where)."""
    version, compressed = word0 & 0xFF, word0 >> 8
    scheme, uncompressed = word1 & 0xFF, word1 >> 8
    if version != 0:
        raise XetFormatError(f"unsupported chunk record version {version}")
    if scheme not in (Scheme.NONE, Scheme.LZ4, Scheme.BG4_LZ4):
        raise XetFormatError(f"unknown compression scheme {scheme}")
    if uncompressed > MAX_CHUNK_UNCOMPRESSED:
        raise XetFormatError(f"chunk claims {uncompressed} bytes (max {MAX_CHUNK_UNCOMPRESSED})")
    if compressed > MAX_CHUNK_COMPRESSED:
        raise XetFormatError(
            f"chunk payload is too large ({compressed} bytes, max {MAX_CHUNK_COMPRESSED})"
        )
    if scheme == Scheme.NONE and compressed != uncompressed:
        raise XetFormatError(
            f"uncompressed chunk has mismatched sizes ({compressed} stored, {uncompressed})"
        )
    return scheme, compressed, uncompressed


def compress_payload(
    data: Buffer, scheme: Scheme, kernels: Kernels
) -> tuple[Scheme, bytes | Buffer]:
    """Compress one chunk with ``kernels``; returns the scheme actually used and the payload.

    Falls back to ``NONE`` (the chunk itself) unless the compressed payload is strictly
    smaller, the rule every xet client applies.
    """
    if scheme == Scheme.NONE:
        return Scheme.NONE, data
    if scheme == Scheme.LZ4:
        payload = lz4frame.compress(data, kernels)
    elif scheme == Scheme.BG4_LZ4:
        payload = lz4frame.compress(kernels.bg4_split(data), kernels)
    else:
        raise ValueError(f"unknown compression scheme {scheme!r}")
    if len(payload) >= len(data):
        return Scheme.NONE, data
    return scheme, payload


def decompress_payload(
    scheme: int, payload: Buffer, uncompressed_size: int, kernels: Kernels
) -> bytes:
    """Decode a record payload with ``kernels``; the result must be exactly
    ``uncompressed_size`` bytes."""
    if scheme == Scheme.NONE:
        out = bytes(payload)
    elif scheme == Scheme.LZ4:
        out = lz4frame.decompress(payload, uncompressed_size, kernels)
    elif scheme == Scheme.BG4_LZ4:
        out = kernels.bg4_regroup(lz4frame.decompress(payload, uncompressed_size, kernels))
    else:
        raise XetFormatError(f"unknown compression scheme {scheme}")
    if len(out) != uncompressed_size:
        raise XetFormatError(
            f"chunk decodes to {len(out)} bytes, its header says {uncompressed_size}"
        )
    return out


def encode_record_python(data: Buffer, scheme: int, kernels: Kernels) -> bytes:
    """A complete chunk record (header + payload, raw fallback) assembled in Python from
    ``kernels``' block functions (LZ4 block, BG4)."""
    used, payload = compress_payload(data, Scheme(scheme), kernels)
    return b"".join((record_header(used, len(payload), len(data)), payload))


def decode_record_batch(
    data: Buffer,
    max_chunks: int,
    out: memoryview,
    key: bytes | None,
    first_index: int,
    kernels: Kernels,
) -> RecordBatch:
    """:meth:`~xet_pyodide.kernels.api.Kernels.decode_records` in Python, one record at a
    time over ``kernels``' block functions (the wasm kernels do the same in one call)."""
    view = memoryview(data).cast("B")
    dst = memoryview(out).cast("B")
    pos = written = need = 0
    sizes: list[int] = []
    while len(sizes) < max_chunks and len(view) - pos >= RECORD_HEADER_LEN:
        try:  # (header and payload problems alike are prefixed with the record's index)
            scheme, compressed, size = check_header(*HEADER.unpack_from(view, pos))
            start = pos + RECORD_HEADER_LEN
            if compressed > len(view) - start:
                break
            if size > len(dst) - written:
                need = size
                break
            payload = view[start : start + compressed]
            dst[written : written + size] = decompress_payload(scheme, payload, size, kernels)
        except XetFormatError as exc:
            raise XetFormatError(f"chunk record {first_index + len(sizes)}: {exc}") from None
        sizes.append(size)
        written += size
        pos = start + compressed
    digests = b""
    if key is not None:
        digests = kernels.blake3_keyed_many(dst[:written], sizes, key)
    return RecordBatch(pos, sizes, need, digests)


__all__ = [
    "HEADER",
    "MAX_CHUNK_COMPRESSED",
    "MAX_CHUNK_UNCOMPRESSED",
    "RECORD_HEADER_LEN",
    "Scheme",
    "check_header",
    "compress_payload",
    "decode_record_batch",
    "decompress_payload",
    "encode_record_python",
    "record_header",
]
