"""Chunk compression schemes of xorb records and hf_xet's choice between them.

Scheme ``LZ4`` stores an LZ4 frame of the chunk; ``BG4_LZ4`` first groups the bytes by their
position modulo 4 (helps float tensors, whose exponent bytes repeat). hf_xet decides between
the two with a cheap statistic of one chunk: the per-position histograms of popcount(byte)
(:func:`bg4_recommended`). Whatever the scheme, a payload that is not strictly smaller than the
chunk is stored raw.
"""

from __future__ import annotations

import math

from ..kernels import get_kernels, records
from ..kernels.api import Buffer
from ..kernels.records import Scheme

#: hf_xet: BG4 is recommended when the largest per-position KL divergence exceeds this.
BG4_KL_THRESHOLD = 0.02

def popcount_histograms(data: Buffer) -> list[list[int]]:
    """For each byte position modulo 4, the histogram of popcount(byte) (9 bins), counted by
    the kernels (one call)."""
    return get_kernels().popcount_histograms(data)


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
    """Compress one chunk with the active kernels; returns the scheme actually used and the
    payload (``NONE`` and the chunk itself unless strictly smaller, the rule every xet client
    applies). The codec: :func:`xet_pyodide.kernels.records.compress_payload`."""
    return records.compress_payload(data, scheme, get_kernels())


def decompress_payload(scheme: int, payload: Buffer, uncompressed_size: int) -> bytes:
    """Decode a record payload with the active kernels; the result must be exactly
    ``uncompressed_size`` bytes (:class:`XetFormatError` otherwise)."""
    return records.decompress_payload(scheme, payload, uncompressed_size, get_kernels())


__all__ = [
    "BG4_KL_THRESHOLD",
    "Scheme",
    "bg4_recommended",
    "choose_scheme",
    "compress_payload",
    "decompress_payload",
    "popcount_histograms",
]
