"""File reconstructions (docs/protocol.md §7.7): which chunks of which xorbs make a byte range
of a file, and where to fetch them.

Planning is pure (a file row + xorb layouts in, terms + fetch ranges out); rendering adds the
signed URLs in the v1 (``fetch_info``) or v2 (``xorbs``) shape. In both shapes the fetch ranges
of a xorb are sorted by chunk start and merged when they overlap or touch: hf_xet's multi-range
download matches multipart parts to ranges by order, and silently builds a wrong file otherwise.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xet_pyodide.core.hashes import MerkleHash

from .byteranges import ByteRange, merge
from .index import FileRow
from .layout import XorbLayout
from .signing import UrlSigner

#: v2: at most this many ranges per signed URL (keeps URLs well under ~8 KiB).
MAX_RANGES_PER_URL = 256


@dataclass(frozen=True)
class Term:
    xorb: str  # xet hex
    start: int
    end: int
    unpacked_length: int


@dataclass(frozen=True)
class Plan:
    offset_into_first_range: int
    terms: list[Term]
    #: per xorb, merged chunk ranges ``(start, end)`` sorted by start
    fetch: dict[str, list[tuple[int, int]]]


def plan(row: FileRow, layout: Callable[[str], XorbLayout], byte_range: ByteRange | None) -> Plan:
    """Terms covering ``byte_range`` (inclusive, already clamped to the file) of ``row``."""
    if byte_range is None:
        if row.size == 0:
            return Plan(0, [], {})
        byte_range = (0, row.size - 1)
    first, last = byte_range
    terms: list[Term] = []
    offset = 0
    pos = 0  # file offset where the current term starts
    for t in row.terms:
        t_start, t_end = pos, pos + t.unpacked_bytes
        pos = t_end
        if t_end <= first:
            continue
        if t_start > last:
            break
        xorb = t.xorb_raw
        lay = layout(_hex(xorb))
        base = lay.unpacked_start(t.chunk_start)  # xorb offset of the term's first byte
        start, end = t.chunk_start, t.chunk_end
        if t_start < first:
            # first chunk whose end lies beyond the requested first byte
            start = bisect_right(
                lay.unpacked_ends, first - t_start + base, t.chunk_start, t.chunk_end
            )
            offset = first - (t_start + lay.unpacked_start(start) - base)
        if t_end - 1 > last:
            end = (
                bisect_right(lay.unpacked_ends, last - t_start + base, t.chunk_start, t.chunk_end)
                + 1
            )
        terms.append(Term(_hex(xorb), start, end, lay.unpacked_len(start, end)))
    return Plan(offset, terms, _fetch_ranges(terms))


def _hex(raw: bytes) -> str:
    return MerkleHash(raw).hex()


def _fetch_ranges(terms: list[Term]) -> dict[str, list[tuple[int, int]]]:
    """Per xorb, the chunk ranges of its terms, sorted and merged (overlapping or adjacent)."""
    by_xorb: dict[str, list[tuple[int, int]]] = {}
    for t in terms:
        by_xorb.setdefault(t.xorb, []).append((t.start, t.end - 1))  # as inclusive ranges
    return {x: [(s, e + 1) for s, e in merge(ranges)] for x, ranges in by_xorb.items()}


def _terms_json(p: Plan) -> list[dict[str, Any]]:
    return [
        {
            "hash": t.xorb,
            "unpacked_length": t.unpacked_length,
            "range": {"start": t.start, "end": t.end},
        }
        for t in p.terms
    ]


def render_v2(
    p: Plan, layout: Callable[[str], XorbLayout], signer: UrlSigner, base: str, expires: int
) -> dict[str, Any]:
    xorbs: dict[str, list[dict[str, Any]]] = {}
    for xorb, chunk_ranges in p.fetch.items():
        lay = layout(xorb)
        entries = []
        for i in range(0, len(chunk_ranges), MAX_RANGES_PER_URL):
            group = chunk_ranges[i : i + MAX_RANGES_PER_URL]
            byte_ranges = [lay.byte_range(s, e) for s, e in group]
            entries.append(
                {
                    "url": signer.sign_xorb_url(base, xorb, byte_ranges, expires),
                    "ranges": [
                        {"chunks": {"start": s, "end": e}, "bytes": {"start": b0, "end": b1}}
                        for (s, e), (b0, b1) in zip(group, byte_ranges, strict=True)
                    ],
                }
            )
        xorbs[xorb] = entries
    return {
        "offset_into_first_range": p.offset_into_first_range,
        "terms": _terms_json(p),
        "xorbs": xorbs,
    }


def render_v1(
    p: Plan, layout: Callable[[str], XorbLayout], signer: UrlSigner, base: str, expires: int
) -> dict[str, Any]:
    fetch_info: dict[str, list[dict[str, Any]]] = {}
    for xorb, chunk_ranges in p.fetch.items():
        lay = layout(xorb)
        entries = []
        for s, e in chunk_ranges:
            b0, b1 = lay.byte_range(s, e)
            entries.append(
                {
                    "range": {"start": s, "end": e},
                    "url": signer.sign_xorb_url(base, xorb, [(b0, b1)], expires),
                    "url_range": {"start": b0, "end": b1},
                }
            )
        fetch_info[xorb] = entries
    return {
        "offset_into_first_range": p.offset_into_first_range,
        "terms": _terms_json(p),
        "fetch_info": fetch_info,
    }
