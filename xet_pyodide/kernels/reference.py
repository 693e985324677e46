"""Reference kernels: slow, obviously-correct implementations used to cross-check the wasm ones.

Uses the native ``blake3`` and ``lz4`` packages when they are importable (CPython dev
environment) and otherwise falls back to pure Python (e.g. inside Pyodide, where no such wheels
exist). Nothing in the package's hot paths should run on this backend: the gear scan here is a
per-byte Python loop, by design the simplest possible statement of the rule.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from .api import GEAR_MASK, Buffer, Kernels, RecordBatch
from .gear_table import GEAR_TABLE
from .lz4block import length_bytes, read_length
from .records import decode_record_batch, encode_record_python

_U64 = 0xFFFF_FFFF_FFFF_FFFF


class ReferenceKernels:
    """Reference implementation of :class:`xet_pyodide.kernels.api.Kernels`."""

    name = "reference"

    def __init__(self, blocks: Kernels | None = None) -> None:
        #: Whose block functions (LZ4 block, byte grouping, BLAKE3) ``encode_record`` and
        #: ``decode_records`` assemble records from (:mod:`.records`): these reference kernels
        #: unless a caller names others (e.g. the wasm ones, to check only the record walk).
        self.blocks: Kernels = self if blocks is None else blocks

    def gear_scan(self, data: Buffer, state: int = 0) -> tuple[list[int], int]:
        h = state & _U64
        table = GEAR_TABLE
        out: list[int] = []
        for i, b in enumerate(bytes(data)):
            h = ((h << 1) + table[b]) & _U64
            if not h & GEAR_MASK:
                out.append(i)
        return out, h

    def blake3_keyed(self, data: Buffer, key: bytes) -> bytes:
        return _blake3(bytes(data), key)

    def blake3_keyed_many(self, data: Buffer, lengths: Sequence[int], key: bytes) -> bytes:
        mv = memoryview(data).cast("B")
        if sum(lengths) != len(mv):
            raise ValueError("lengths do not add up to len(data)")
        out = bytearray()
        pos = 0
        for n in lengths:
            out += _blake3(bytes(mv[pos : pos + n]), key)
            pos += n
        return bytes(out)

    def lz4_compress_block(self, data: Buffer) -> bytes:
        return _lz4_compress(bytes(data))

    def lz4_decompress_block(self, data: Buffer, max_output: int) -> bytes:
        return _lz4_decompress(bytes(data), max_output)

    def bg4_split(self, data: Buffer) -> bytes:
        b = bytes(data)
        return b[0::4] + b[1::4] + b[2::4] + b[3::4]

    def bg4_regroup(self, data: Buffer) -> bytes:
        b = bytes(data)
        n = len(b)
        out = bytearray(n)
        pos = 0
        for k in range(4):
            size = n // 4 + (1 if k < n % 4 else 0)
            out[k::4] = b[pos : pos + size]
            pos += size
        return bytes(out)

    def popcount_histograms(self, data: Buffer) -> list[list[int]]:
        raw = bytes(data)
        histograms = []
        for k in range(4):
            popcounts = raw[k::4].translate(_POPCOUNT_TABLE)
            histograms.append([popcounts.count(b) for b in _POPCOUNT_BINS])
        return histograms

    def encode_record(self, data: Buffer, scheme: int) -> bytes:
        return encode_record_python(data, scheme, self.blocks)

    def encode_records(
        self,
        chunks: Sequence[Buffer],
        schemes: Buffer,
        out: bytearray,
        crc: int | None = None,
    ) -> int | None:
        marks = bytes(memoryview(schemes).cast("B"))
        if len(marks) != len(chunks):
            raise ValueError(f"{len(chunks)} chunks but {len(marks)} schemes")
        start = len(out)
        records = [self.encode_record(c, s) for c, s in zip(chunks, marks, strict=True)]
        out += b"".join(records)
        return None if crc is None else self.crc64_nvme(out[start:], crc)

    def decode_records(
        self,
        data: Buffer,
        max_chunks: int,
        out: memoryview,
        key: bytes | None = None,
        first_index: int = 0,
    ) -> RecordBatch:
        return decode_record_batch(data, max_chunks, out, key, first_index, self.blocks)

    def crc64_nvme(self, data: Buffer, crc: int = 0) -> int:
        c = crc ^ _U64
        table = _crc64_table()
        for b in bytes(data):
            c = table[(c ^ b) & 0xFF] ^ (c >> 8)
        return c ^ _U64

    def xxh32(self, data: Buffer, seed: int = 0) -> int:
        return _xxh32(bytes(data), seed)

    def sha256_blocks(self, state: bytes, data: Buffer) -> bytes:
        raw = bytes(data)
        if len(state) != 32 or len(raw) % 64:
            raise ValueError("sha256_blocks: a 32-byte state and whole 64-byte blocks")
        h = list(struct.unpack(">8I", state))
        for start in range(0, len(raw), 64):
            h = _sha256_compress(h, raw[start : start + 64])
        return struct.pack(">8I", *h)


# --------------------------------------------------------------------------- BLAKE3

try:  # pragma: no cover - depends on the environment
    import blake3 as _blake3_mod

    def _blake3(data: bytes, key: bytes) -> bytes:
        return _blake3_mod.blake3(data, key=key).digest()

except ImportError:  # pragma: no cover - Pyodide

    def _blake3(data: bytes, key: bytes) -> bytes:
        return _py_blake3_keyed(data, key)


_POPCOUNT_TABLE = bytes(bin(i).count("1") for i in range(256))
_POPCOUNT_BINS = [bytes((k,)) for k in range(9)]

_IV = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
       0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)
_PERM = (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
_CHUNK_START, _CHUNK_END, _PARENT, _ROOT, _KEYED_HASH = 1, 2, 4, 8, 16
_M32 = 0xFFFFFFFF


def _g(s: list[int], a: int, b: int, c: int, d: int, x: int, y: int) -> None:
    s[a] = (s[a] + s[b] + x) & _M32
    s[d] ^= s[a]
    s[d] = ((s[d] >> 16) | (s[d] << 16)) & _M32
    s[c] = (s[c] + s[d]) & _M32
    s[b] ^= s[c]
    s[b] = ((s[b] >> 12) | (s[b] << 20)) & _M32
    s[a] = (s[a] + s[b] + y) & _M32
    s[d] ^= s[a]
    s[d] = ((s[d] >> 8) | (s[d] << 24)) & _M32
    s[c] = (s[c] + s[d]) & _M32
    s[b] ^= s[c]
    s[b] = ((s[b] >> 7) | (s[b] << 25)) & _M32


def _compress(cv: Sequence[int], block: bytes, counter: int, blen: int, flags: int) -> list[int]:
    m = [int.from_bytes(block[4 * i : 4 * i + 4], "little") for i in range(16)]
    s = [*cv, *_IV[:4], counter & _M32, (counter >> 32) & _M32, blen, flags]
    for r in range(7):
        _g(s, 0, 4, 8, 12, m[0], m[1])
        _g(s, 1, 5, 9, 13, m[2], m[3])
        _g(s, 2, 6, 10, 14, m[4], m[5])
        _g(s, 3, 7, 11, 15, m[6], m[7])
        _g(s, 0, 5, 10, 15, m[8], m[9])
        _g(s, 1, 6, 11, 12, m[10], m[11])
        _g(s, 2, 7, 8, 13, m[12], m[13])
        _g(s, 3, 4, 9, 14, m[14], m[15])
        if r < 6:
            m = [m[p] for p in _PERM]
    return [s[i] ^ s[i + 8] for i in range(8)] + [s[i + 8] ^ cv[i] for i in range(8)]


def _chunk_output(
    key_words: Sequence[int], chunk: bytes, counter: int
) -> tuple[list[int], bytes, int, int]:
    """Process all but the last block of a 1 KiB chunk; return (cv, last block, len, flags)."""
    cv = list(key_words)
    blocks = [chunk[i : i + 64] for i in range(0, len(chunk), 64)] or [b""]
    for i, blk in enumerate(blocks[:-1]):
        flags = _KEYED_HASH | (_CHUNK_START if i == 0 else 0)
        cv = _compress(cv, blk, counter, 64, flags)[:8]
    last = blocks[-1]
    flags = _KEYED_HASH | _CHUNK_END | (_CHUNK_START if len(blocks) == 1 else 0)
    return cv, last.ljust(64, b"\0"), len(last), flags


def _py_blake3_keyed(data: bytes, key: bytes) -> bytes:
    key_words = [int.from_bytes(key[4 * i : 4 * i + 4], "little") for i in range(8)]
    chunks = [data[i : i + 1024] for i in range(0, len(data), 1024)] or [b""]
    if len(chunks) == 1:
        cv, blk, blen, flags = _chunk_output(key_words, chunks[0], 0)
        out = _compress(cv, blk, 0, blen, flags | _ROOT)[:8]
        return b"".join(w.to_bytes(4, "little") for w in out)
    stack: list[list[int]] = []
    for idx, chunk in enumerate(chunks):
        cv, blk, blen, flags = _chunk_output(key_words, chunk, idx)
        cv = _compress(cv, blk, idx, blen, flags)[:8]
        if idx == len(chunks) - 1:
            break
        total = idx + 1
        while total & 1 == 0:
            left = stack.pop()
            cv = _compress(key_words, _words_bytes(left + cv), 0, 64, _KEYED_HASH | _PARENT)[:8]
            total >>= 1
        stack.append(cv)
    # Merge the remaining stack right-to-left; the final merge is the root.
    while stack:
        left = stack.pop()
        flags = _KEYED_HASH | _PARENT | (_ROOT if not stack else 0)
        cv = _compress(key_words, _words_bytes(left + cv), 0, 64, flags)[:8]
    return _words_bytes(cv)


def _words_bytes(words: Sequence[int]) -> bytes:
    return b"".join(w.to_bytes(4, "little") for w in words)


# --------------------------------------------------------------------------- LZ4 block

try:  # pragma: no cover - depends on the environment
    import lz4.block as _lz4_block

    def _lz4_compress(data: bytes) -> bytes:
        return _lz4_block.compress(data, store_size=False)

except ImportError:  # pragma: no cover - Pyodide

    def _lz4_compress(data: bytes) -> bytes:
        return _py_lz4_literals_only(data)


def _py_lz4_literals_only(data: bytes) -> bytes:
    """A valid LZ4 block with no matches (one literal run). Correct, not compact."""
    n = len(data)
    out = bytearray()
    if n < 15:
        out.append(n << 4)
    else:
        out.append(0xF0)
        out += length_bytes(n)
    out += data
    return bytes(out)


def _lz4_decompress(src: bytes, max_output: int) -> bytes:
    from ..errors import XetFormatError

    out = bytearray()
    i, n = 0, len(src)
    while True:
        if i >= n:
            raise XetFormatError("LZ4 block truncated (missing token)")
        token = src[i]
        i += 1
        lit, i = read_length(src, i, token >> 4, "literal length")
        if i + lit > n:
            raise XetFormatError("LZ4 block truncated in literals")
        if len(out) + lit > max_output:
            raise XetFormatError("LZ4 output exceeds the expected size")
        out += src[i : i + lit]
        i += lit
        if i == n:
            return bytes(out)  # last sequence has literals only
        if i + 2 > n:
            raise XetFormatError("LZ4 block truncated in match offset")
        offset = src[i] | (src[i + 1] << 8)
        i += 2
        if offset == 0 or offset > len(out):
            raise XetFormatError("LZ4 match offset points before the start of the output")
        mlen, i = read_length(src, i, token & 15, "match length")
        mlen += 4
        if len(out) + mlen > max_output:
            raise XetFormatError("LZ4 output exceeds the expected size")
        start = len(out) - offset
        if offset >= mlen:
            out += out[start : start + mlen]
        else:  # overlapping copy: repeat the period
            period = bytes(out[start:])
            reps, rem = divmod(mlen, offset)
            out += period * reps + period[:rem]


# --------------------------------------------------------------------------- CRC-64/NVME

_CRC_TABLE: list[int] | None = None


def _crc64_table() -> list[int]:
    global _CRC_TABLE
    if _CRC_TABLE is None:
        poly = 0x9A6C9329AC4BC9B5
        table = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ poly if c & 1 else c >> 1
            table.append(c)
        _CRC_TABLE = table
    return _CRC_TABLE


# --------------------------------------------------------------------------- xxHash32

_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def _xxh32(data: bytes, seed: int) -> int:
    n = len(data)
    i = 0
    if n >= 16:
        v = [(seed + _P1 + _P2) & _M32, (seed + _P2) & _M32, seed & _M32, (seed - _P1) & _M32]
        while i + 16 <= n:
            for k in range(4):
                lane = int.from_bytes(data[i + 4 * k : i + 4 * k + 4], "little")
                v[k] = (_rotl((v[k] + lane * _P2) & _M32, 13) * _P1) & _M32
            i += 16
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M32
    else:
        h = (seed + _P5) & _M32
    h = (h + n) & _M32
    while i + 4 <= n:
        h = (h + int.from_bytes(data[i : i + 4], "little") * _P3) & _M32
        h = (_rotl(h, 17) * _P4) & _M32
        i += 4
    while i < n:
        h = (h + data[i] * _P5) & _M32
        h = (_rotl(h, 11) * _P1) & _M32
        i += 1
    h ^= h >> 15
    h = (h * _P2) & _M32
    h ^= h >> 13
    h = (h * _P3) & _M32
    h ^= h >> 16
    return h


# --------------------------------------------------------------------------- SHA-256

_SHA256_K = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4,
    0xAB1C5ED5, 0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE,
    0x9BDC06A7, 0xC19BF174, 0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F,
    0x4A7484AA, 0x5CB0A9DC, 0x76F988DA, 0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7,
    0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967, 0x27B70A85, 0x2E1B2138, 0x4D2C6DFC,
    0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85, 0xA2BFE8A1, 0xA81A664B,
    0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070, 0x19A4C116,
    0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7,
    0xC67178F2,
)  # fmt: skip


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & 0xFFFFFFFF


def _sha256_compress(h: list[int], block: bytes) -> list[int]:
    """FIPS 180-4 §6.2.2, written for clarity (the reference the wasm kernel is checked
    against)."""
    w = list(struct.unpack(">16I", block))
    for t in range(16, 64):
        s0 = _rotr(w[t - 15], 7) ^ _rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
        s1 = _rotr(w[t - 2], 17) ^ _rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
        w.append((w[t - 16] + s0 + w[t - 7] + s1) & 0xFFFFFFFF)
    a, b, c, d, e, f, g, hh = h
    for t in range(64):
        big_s1 = _rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)
        ch = (e & f) ^ (~e & g)
        t1 = (hh + big_s1 + ch + _SHA256_K[t] + w[t]) & 0xFFFFFFFF
        big_s0 = _rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)
        maj = (a & b) ^ (a & c) ^ (b & c)
        t2 = (big_s0 + maj) & 0xFFFFFFFF
        a, b, c, d, e, f, g, hh = (t1 + t2) & 0xFFFFFFFF, a, b, c, (d + t1) & 0xFFFFFFFF, e, f, g
    return [(x + y) & 0xFFFFFFFF for x, y in zip(h, (a, b, c, d, e, f, g, hh), strict=True)]
