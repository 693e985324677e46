"""LZ4 frame format (the container xorb chunk payloads use) over the LZ4 *block* kernels.

The kernels are an argument (``kernels``), not :func:`~xet_pyodide.kernels.get_kernels`: the
reference kernels decode records with this codec over their own block functions, and the core
passes the active backend (:mod:`xet_pyodide.core.compression`).

Encoding writes what hf_xet writes: FLG ``0x60`` (version 01, independent blocks, no checksums,
no content size), BD sized from the input (64 KiB / 256 KiB / 1 MiB / 4 MiB maximum block), the
header checksum, the blocks (stored uncompressed when compression does not shrink them) and the
zero end mark.

Decoding accepts any valid frame: linked or independent blocks, block and content checksums,
content size, concatenated frames and skippable frames. Dictionary ids are refused (there is no
way to know the dictionary). Every malformation raises :class:`XetFormatError`; output is capped
by the caller's ``max_output`` so a hostile frame cannot make us allocate more.
"""

from __future__ import annotations

import struct

from ..errors import XetFormatError
from .api import Buffer, Kernels
from .lz4block import length_bytes, read_length

FRAME_MAGIC = 0x184D2204
_SKIPPABLE_MASK = 0xFFFFFFF0
_SKIPPABLE_MAGIC = 0x184D2A50

_FLG_VERSION = 0x40
_FLG_BLOCK_INDEPENDENT = 0x20
_FLG_BLOCK_CHECKSUM = 0x10
_FLG_CONTENT_SIZE = 0x08
_FLG_CONTENT_CHECKSUM = 0x04
_FLG_RESERVED = 0x02
_FLG_DICT_ID = 0x01

_UNCOMPRESSED_BIT = 0x8000_0000
_BLOCK_MAX = {4: 64 << 10, 5: 256 << 10, 6: 1 << 20, 7: 4 << 20}
#: Linked blocks may reference up to this much of the previous output.
_WINDOW = 64 << 10

_U32 = struct.Struct("<I")


def _block_size_code(n: int) -> int:
    """BD code for an input of ``n`` bytes: the smallest maximum block size that holds it."""
    for code in (4, 5, 6):
        if n <= _BLOCK_MAX[code]:
            return code
    return 7


def compress(data: Buffer, kernels: Kernels) -> bytes:
    """Encode ``data`` as one LZ4 frame with independent blocks."""
    view = memoryview(data).cast("B")
    code = _block_size_code(len(view))
    flg = _FLG_VERSION | _FLG_BLOCK_INDEPENDENT
    descriptor = bytes((flg, code << 4))
    header_checksum = _header_checksum(descriptor, kernels)
    parts: list[bytes | memoryview] = [
        _U32.pack(FRAME_MAGIC),
        descriptor,
        bytes((header_checksum,)),
    ]
    block_max = _BLOCK_MAX[code]
    for start in range(0, len(view), block_max):
        raw = view[start : start + block_max]
        packed = kernels.lz4_compress_block(raw)
        if len(packed) < len(raw):
            parts += (_U32.pack(len(packed)), packed)
        else:
            parts += (_U32.pack(len(raw) | _UNCOMPRESSED_BIT), raw)
    parts.append(bytes(4))
    return b"".join(parts)


class _Reader:
    """Bounds-checked cursor over the frame bytes."""

    __slots__ = ("data", "pos")

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> memoryview:
        if n > len(self.data) - self.pos:
            raise XetFormatError(f"LZ4 frame truncated in {what}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u32(self, what: str) -> int:
        return _U32.unpack(self.take(4, what))[0]


def decompress(data: Buffer, max_output: int, kernels: Kernels) -> bytes:
    """Decode one or more concatenated LZ4 frames; the output may not exceed ``max_output``."""
    reader = _Reader(memoryview(data).cast("B"))
    out: list[bytes] = []
    produced = 0
    frames = 0
    while reader.remaining():
        magic = reader.u32("magic number")
        if magic & _SKIPPABLE_MASK == _SKIPPABLE_MAGIC:
            reader.take(reader.u32("skippable frame size"), "skippable frame")
            continue
        if magic != FRAME_MAGIC:
            raise XetFormatError(f"not an LZ4 frame (magic 0x{magic:08x})")
        frame = _decode_frame(reader, max_output - produced, kernels)
        produced += len(frame)
        out.append(frame)
        frames += 1
    if not frames:
        raise XetFormatError("no LZ4 frame found")
    return out[0] if len(out) == 1 else b"".join(out)


def _decode_frame(reader: _Reader, max_output: int, kernels: Kernels) -> bytes:
    """Decode one frame after its magic number."""
    start = reader.pos
    flg, bd = reader.take(2, "frame descriptor")
    if flg & 0xC0 != _FLG_VERSION:
        raise XetFormatError(f"unsupported LZ4 frame version (FLG 0x{flg:02x})")
    if flg & _FLG_RESERVED or bd & 0x8F:
        raise XetFormatError("reserved bits set in the LZ4 frame descriptor")
    if flg & _FLG_DICT_ID:
        raise XetFormatError("LZ4 frames with a dictionary id are not supported")
    code = (bd >> 4) & 0x07
    if code not in _BLOCK_MAX:
        raise XetFormatError(f"invalid LZ4 block maximum size code {code}")
    block_max = _BLOCK_MAX[code]
    content_size = None
    if flg & _FLG_CONTENT_SIZE:
        content_size = int.from_bytes(reader.take(8, "content size"), "little")
        if content_size > max_output:
            raise XetFormatError("LZ4 frame content size exceeds the expected size")
    descriptor = reader.data[start : reader.pos]
    (checksum,) = reader.take(1, "header checksum")
    if checksum != _header_checksum(bytes(descriptor), kernels):
        raise XetFormatError("LZ4 frame header checksum mismatch")

    linked = not flg & _FLG_BLOCK_INDEPENDENT
    has_block_checksum = bool(flg & _FLG_BLOCK_CHECKSUM)
    blocks: list[bytes] = []
    produced = 0
    window = b""  # previous output, the dictionary of a linked block
    while True:
        word = reader.u32("block size")
        if word == 0:
            break
        size = word & ~_UNCOMPRESSED_BIT
        if size > block_max:
            raise XetFormatError(f"LZ4 block of {size} bytes exceeds the frame's maximum")
        payload = reader.take(size, "block data")
        if has_block_checksum and reader.u32("block checksum") != kernels.xxh32(payload, 0):
            raise XetFormatError("LZ4 block checksum mismatch")
        limit = min(block_max, max_output - produced)
        if word & _UNCOMPRESSED_BIT:
            if size > limit:
                raise XetFormatError("LZ4 frame output exceeds the expected size")
            block = bytes(payload)
        elif linked and window:
            block = _decompress_with_prefix(payload, window, limit, kernels)
        else:
            block = kernels.lz4_decompress_block(payload, limit)
        blocks.append(block)
        produced += len(block)
        if linked:
            window = (window + block)[-_WINDOW:] if len(block) < _WINDOW else block[-_WINDOW:]
    content = blocks[0] if len(blocks) == 1 else b"".join(blocks)
    if flg & _FLG_CONTENT_CHECKSUM and reader.u32("content checksum") != kernels.xxh32(content, 0):
        raise XetFormatError("LZ4 content checksum mismatch")
    if content_size is not None and content_size != len(content):
        raise XetFormatError("LZ4 frame content size does not match the decoded data")
    return content


_HEADER_CHECKSUMS: dict[bytes, int] = {}


def _header_checksum(descriptor: bytes, kernels: Kernels) -> int:
    """Second byte of xxh32 of a frame descriptor. Memoized by descriptor (not by kernels, so
    no backend is kept alive here): every chunk of a xorb carries a frame, and their
    descriptors are nearly always the same few bytes (one kernel call saved per chunk, encoding
    and decoding)."""
    checksum = _HEADER_CHECKSUMS.get(descriptor)
    if checksum is None:
        if len(_HEADER_CHECKSUMS) >= 64:
            _HEADER_CHECKSUMS.clear()
        checksum = _HEADER_CHECKSUMS[descriptor] = (kernels.xxh32(descriptor, 0) >> 8) & 0xFF
    return checksum


def _decompress_with_prefix(
    payload: memoryview, prefix: bytes, limit: int, kernels: Kernels
) -> bytes:
    """Decompress a linked block whose matches may reach into ``prefix`` (earlier output).

    The block kernel has no dictionary argument, so we build an equivalent block whose first
    sequence starts with ``prefix`` as extra literals: the block's first token is re-encoded with
    a longer literal run, after which every back-reference lands where it would in the stream.
    Only the first token is touched; the rest of the block is reused as is.
    """
    if not len(payload):
        raise XetFormatError("LZ4 block truncated (missing token)")
    token = payload[0]
    literals, pos = read_length(payload, 1, token >> 4, "literal length")
    total = literals + len(prefix)
    head = bytearray(((min(total, 15) << 4) | (token & 0x0F),))
    if total >= 15:
        head += length_bytes(total)
    rebuilt = b"".join((head, prefix, payload[pos:]))
    out = kernels.lz4_decompress_block(rebuilt, len(prefix) + limit)
    return out[len(prefix) :]


__all__ = ["FRAME_MAGIC", "compress", "decompress"]
