"""Chunk compression schemes of xorb records and hf_xet's choice between them.

Scheme ``LZ4`` stores an LZ4 frame of the chunk; ``BG4_LZ4`` first groups the bytes by their
position modulo 4 (helps float tensors, whose exponent bytes repeat). hf_xet decides between
the two with a cheap statistic of one chunk: the per-position histograms of popcount(byte)
(:func:`bg4_recommended`). Whatever the scheme, a payload that is not strictly smaller than the
chunk is stored raw.
"""

from __future__ import annotations

import math
from enum import IntEnum

from ..errors import XetFormatError
from ..kernels import get_kernels
from . import lz4frame

Buffer = bytes | bytearray | memoryview


class Scheme(IntEnum):
    """Compression scheme byte of a chunk record header."""

    NONE = 0
    LZ4 = 1
    BG4_LZ4 = 2


#: hf_xet: BG4 is recommended when the largest per-position KL divergence exceeds this.
BG4_KL_THRESHOLD = 0.02

_POPCOUNT_TABLE = bytes(bin(i).count("1") for i in range(256))
_POPCOUNT_BINS = [bytes((k,)) for k in range(9)]


def popcount_histograms(data: Buffer) -> list[list[int]]:
    """For each byte position modulo 4, the histogram of popcount(byte) (9 bins)."""
    raw = bytes(data)
    histograms = []
    for k in range(4):
        popcounts = raw[k::4].translate(_POPCOUNT_TABLE)
        histograms.append([popcounts.count(b) for b in _POPCOUNT_BINS])
    return histograms


def bg4_recommended(data: Buffer) -> bool:
    """hf_xet's BG4 predictor: max KL divergence of a position's popcount distribution from the
    pooled one (pooled counts get +1 per bin; positions with an empty bin are skipped, as the
    reference code's NaN is ignored by its max)."""
    histograms = popcount_histograms(data)
    totals = [sum(h) for h in histograms]
    base_total = sum(totals)
    base = [1 + sum(h[j] for h in histograms) for j in range(9)]
    max_kl = 0.0
    for hist, total in zip(histograms, totals, strict=True):
        if total == 0 or 0 in hist:
            continue
        kl = 0.0
        for count, pooled in zip(hist, base, strict=True):
            p = count / total
            kl += p * math.log(p / (pooled / base_total))
        max_kl = max(max_kl, kl)
    return max_kl > BG4_KL_THRESHOLD


def choose_scheme(data: Buffer) -> Scheme:
    """The scheme hf_xet picks for a block of chunks, judged on ``data`` (its first chunk)."""
    return Scheme.BG4_LZ4 if bg4_recommended(data) else Scheme.LZ4


def compress_payload(data: Buffer, scheme: Scheme) -> tuple[Scheme, bytes | Buffer]:
    """Compress one chunk; returns the scheme actually used and the payload.

    Falls back to ``NONE`` (the chunk itself) unless the compressed payload is strictly
    smaller, the rule every xet client applies.
    """
    if scheme == Scheme.NONE:
        return Scheme.NONE, data
    if scheme == Scheme.LZ4:
        payload = lz4frame.compress(data)
    elif scheme == Scheme.BG4_LZ4:
        payload = lz4frame.compress(get_kernels().bg4_split(data))
    else:
        raise ValueError(f"unknown compression scheme {scheme!r}")
    if len(payload) >= len(data):
        return Scheme.NONE, data
    return scheme, payload


def decompress_payload(scheme: int, payload: Buffer, uncompressed_size: int) -> bytes:
    """Decode a record payload; the result must be exactly ``uncompressed_size`` bytes."""
    if scheme == Scheme.NONE:
        out = bytes(payload)
    elif scheme == Scheme.LZ4:
        out = lz4frame.decompress(payload, uncompressed_size)
    elif scheme == Scheme.BG4_LZ4:
        out = get_kernels().bg4_regroup(lz4frame.decompress(payload, uncompressed_size))
    else:
        raise XetFormatError(f"unknown compression scheme {scheme}")
    if len(out) != uncompressed_size:
        raise XetFormatError(
            f"chunk decodes to {len(out)} bytes, its header says {uncompressed_size}"
        )
    return out


__all__ = [
    "BG4_KL_THRESHOLD",
    "Scheme",
    "bg4_recommended",
    "choose_scheme",
    "compress_payload",
    "decompress_payload",
    "popcount_histograms",
]
