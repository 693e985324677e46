"""The footer ("CasObjectInfo") of a *stored* xorb.

Clients upload xorbs without it; servers and hf_xet's ``local://`` backend append it after the
last chunk record. Layout V1 (written here) and V0 (legacy, parsed only) are described in
docs/protocol.md §4.4. The parser is strict: every length is checked against the bytes present
before anything is read, so a hostile ``num_chunks`` cannot cause a large allocation.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import XetFormatError
from .hashes import HASH_LEN, MerkleHash

FOOTER_IDENT = b"XETBLOB"
HASHES_IDENT = b"XBLBHSH"
BOUNDARIES_IDENT = b"XBLBBND"
NONCE_LEN = 16

_V1_FIXED = 92  # bytes of a V1 footer besides the per-chunk arrays
_V1_PER_CHUNK = HASH_LEN + 8
_V0_FIXED = 60
_V0_PER_CHUNK = HASH_LEN + 4
_U32 = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class XorbFooter:
    """Parsed footer. ``unpacked_ends`` is ``None`` for V0 footers (they do not carry it)."""

    version: int
    xorb_hash: MerkleHash
    chunk_hashes: list[MerkleHash]
    record_ends: list[int]
    unpacked_ends: list[int] | None
    nonce: bytes
    #: Offset of the footer in the stored object = length of the chunk records.
    footer_start: int


def build_footer(
    chunk_hashes: Sequence[MerkleHash],
    record_ends: Sequence[int],
    unpacked_ends: Sequence[int],
    xorb_hash: MerkleHash,
    nonce: bytes = bytes(NONCE_LEN),
) -> bytes:
    """Serialize a V1 footer, including the trailing ``info_length``.

    ``record_ends`` are the cumulative end offsets of the chunk records (8-byte headers
    included) and ``unpacked_ends`` the cumulative uncompressed sizes.
    """
    n = len(chunk_hashes)
    if len(record_ends) != n or len(unpacked_ends) != n:
        raise ValueError("chunk_hashes, record_ends and unpacked_ends must have equal lengths")
    if len(nonce) != NONCE_LEN:
        raise ValueError(f"the footer nonce is {NONCE_LEN} bytes")
    boundary_section_len = 7 + 1 + 4 + 8 * n + 12 + NONCE_LEN
    hashes_section_len = 7 + 1 + 4 + HASH_LEN * n + boundary_section_len
    count = _U32.pack(n)
    parts = [
        FOOTER_IDENT,
        b"\x01",
        xorb_hash.raw,
        HASHES_IDENT,
        b"\x00",
        count,
        *(h.raw for h in chunk_hashes),
        BOUNDARIES_IDENT,
        b"\x01",
        count,
        struct.pack(f"<{n}I", *record_ends),
        struct.pack(f"<{n}I", *unpacked_ends),
        count,
        _U32.pack(hashes_section_len),
        _U32.pack(boundary_section_len),
        bytes(nonce),
    ]
    info = b"".join(parts)
    return info + _U32.pack(len(info))


class _Cursor:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: memoryview, start: int, end: int) -> None:
        self.data = data
        self.pos = start
        self.end = end

    def take(self, n: int, what: str) -> memoryview:
        if n > self.end - self.pos:
            raise XetFormatError(f"xorb footer truncated in {what}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u32(self, what: str) -> int:
        return _U32.unpack(self.take(4, what))[0]

    def u32s(self, n: int, what: str) -> list[int]:
        return list(struct.unpack(f"<{n}I", self.take(4 * n, what)))

    def hashes(self, n: int, what: str) -> list[MerkleHash]:
        raw = bytes(self.take(HASH_LEN * n, what))
        return [MerkleHash(raw[i : i + HASH_LEN]) for i in range(0, len(raw), HASH_LEN)]

    def expect(self, ident: bytes, what: str) -> None:
        if bytes(self.take(len(ident), what)) != ident:
            raise XetFormatError(f"xorb footer: bad {what} identifier")


def has_footer(stored: bytes | bytearray | memoryview) -> bool:
    """Cheap test: does this look like a stored xorb (records followed by a footer)?"""
    view = memoryview(stored).cast("B")
    if len(view) < 4 + _V0_FIXED:
        return False
    info_length = _U32.unpack(view[-4:])[0]
    start = len(view) - 4 - info_length
    return start >= 0 and bytes(view[start : start + 7]) == FOOTER_IDENT


def parse_footer(stored: bytes | bytearray | memoryview) -> XorbFooter:
    """Parse the footer at the end of a stored xorb (V1, or legacy V0)."""
    view = memoryview(stored).cast("B")
    if len(view) < 4:
        raise XetFormatError("stored xorb too short for a footer")
    info_length = _U32.unpack(view[-4:])[0]
    end = len(view) - 4
    start = end - info_length
    if start < 0:
        raise XetFormatError("xorb footer length exceeds the object size")
    cur = _Cursor(view, start, end)
    cur.expect(FOOTER_IDENT, "footer")
    version = cur.take(1, "version")[0]
    if version == 1:
        footer = _parse_v1(cur, info_length, start)
    elif version == 0:
        footer = _parse_v0(cur, info_length, start)
    else:
        raise XetFormatError(f"unsupported xorb footer version {version}")
    _check_offsets(footer)
    return footer


def _parse_v1(cur: _Cursor, info_length: int, start: int) -> XorbFooter:
    xorb_hash = MerkleHash(cur.take(HASH_LEN, "xorb hash"))
    cur.expect(HASHES_IDENT, "hash section")
    if cur.take(1, "hashes version")[0] != 0:
        raise XetFormatError("unsupported xorb footer hash section version")
    n = cur.u32("chunk count")
    if _V1_FIXED + _V1_PER_CHUNK * n != info_length:
        raise XetFormatError(f"xorb footer length {info_length} does not fit {n} chunks")
    hashes = cur.hashes(n, "chunk hashes")
    cur.expect(BOUNDARIES_IDENT, "boundary section")
    if cur.take(1, "boundaries version")[0] != 1:
        raise XetFormatError("unsupported xorb footer boundary section version")
    if cur.u32("chunk count") != n:
        raise XetFormatError("xorb footer chunk counts disagree")
    record_ends = cur.u32s(n, "chunk boundaries")
    unpacked_ends = cur.u32s(n, "unpacked offsets")
    if cur.u32("chunk count") != n:
        raise XetFormatError("xorb footer chunk counts disagree")
    hashes_offset = cur.u32("hash section offset")
    boundary_offset = cur.u32("boundary section offset")
    if boundary_offset != 7 + 1 + 4 + 8 * n + 12 + NONCE_LEN:
        raise XetFormatError("xorb footer: wrong boundary section offset")
    if hashes_offset != 7 + 1 + 4 + HASH_LEN * n + boundary_offset:
        raise XetFormatError("xorb footer: wrong hash section offset")
    nonce = bytes(cur.take(NONCE_LEN, "nonce"))
    return XorbFooter(1, xorb_hash, hashes, record_ends, unpacked_ends, nonce, start)


def _parse_v0(cur: _Cursor, info_length: int, start: int) -> XorbFooter:
    xorb_hash = MerkleHash(cur.take(HASH_LEN, "xorb hash"))
    n = cur.u32("chunk count")
    if _V0_FIXED + _V0_PER_CHUNK * n != info_length:
        raise XetFormatError(f"xorb footer length {info_length} does not fit {n} chunks")
    record_ends = cur.u32s(n, "chunk boundaries")
    hashes = cur.hashes(n, "chunk hashes")
    nonce = bytes(cur.take(NONCE_LEN, "buffer"))
    return XorbFooter(0, xorb_hash, hashes, record_ends, None, nonce, start)


def _check_offsets(footer: XorbFooter) -> None:
    ends = footer.record_ends
    previous = 0
    for end in ends:
        if end < previous + 8:
            raise XetFormatError("xorb footer chunk boundaries are not increasing")
        previous = end
    if previous != footer.footer_start:
        raise XetFormatError("xorb footer does not start right after the last chunk record")
    if footer.unpacked_ends is not None:
        previous = 0
        for end in footer.unpacked_ends:
            if end < previous:
                raise XetFormatError("xorb footer unpacked offsets are not increasing")
            previous = end


__all__ = ["FOOTER_IDENT", "XorbFooter", "build_footer", "has_footer", "parse_footer"]
