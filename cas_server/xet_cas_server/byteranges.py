"""HTTP byte ranges (RFC 9110 §14): parsing, containment, ``multipart/byteranges`` bodies.

Ranges are inclusive ``(first, last)`` pairs, as on the wire.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import pairwise

ByteRange = tuple[int, int]

_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def _split(value: str) -> list[str]:
    unit, sep, spec = value.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        raise ValueError(f"not a bytes range: {value!r}")
    parts = spec.split(",")
    if not parts or len(parts) > 10_000:
        raise ValueError("bad number of ranges")
    return parts


def parse_ranges(value: str) -> list[ByteRange]:
    """Parse ``bytes=a-b[,c-d...]`` with closed ranges only (what xorb fetches use)."""
    out: list[ByteRange] = []
    for part in _split(value):
        m = _SPEC.match(part)
        if not m or not m.group(1) or not m.group(2):
            raise ValueError(f"only closed ranges are accepted here: {part!r}")
        first, last = int(m.group(1)), int(m.group(2))
        if last < first:
            raise ValueError(f"empty range {part!r}")
        out.append((first, last))
    return out


def parse_file_range(value: str, size: int) -> ByteRange | None:
    """Parse a single-range ``Range`` header against a resource of ``size`` bytes.

    Returns the clamped inclusive range, or None when the range starts at/after the end
    (the caller answers 416). ``bytes=S-``, ``bytes=S-E`` and suffix ``bytes=-N`` are accepted.
    Raises ValueError for syntax errors and multi-range requests.
    """
    parts = _split(value)
    if len(parts) != 1:
        raise ValueError("reconstruction accepts a single range")
    m = _SPEC.match(parts[0])
    if not m or (not m.group(1) and not m.group(2)):
        raise ValueError(f"bad range {value!r}")
    if not m.group(1):  # suffix range: the last N bytes
        n = int(m.group(2))
        if n == 0 or size == 0:
            return None
        return max(0, size - n), size - 1
    first = int(m.group(1))
    if m.group(2) and int(m.group(2)) < first:
        raise ValueError(f"bad range {value!r}")
    if first >= size:  # also for ``bytes=N-``: past the end is 416, not a syntax error
        return None
    last = int(m.group(2)) if m.group(2) else size - 1
    return first, min(last, size - 1)


def format_ranges(ranges: Iterable[ByteRange]) -> str:
    return "bytes=" + ",".join(f"{a}-{b}" for a, b in ranges)


def merge(ranges: Iterable[ByteRange]) -> list[ByteRange]:
    """Sort and merge overlapping or adjacent inclusive ranges."""
    out: list[ByteRange] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def all_covered(requested: Sequence[ByteRange], allowed: Sequence[ByteRange]) -> bool:
    """True if every requested range lies inside one allowed range."""
    return all(any(a <= r0 and r1 <= b for a, b in allowed) for r0, r1 in requested)


def overlapping(ranges: Sequence[ByteRange]) -> bool:
    """True if two of ``ranges`` share a byte (touching ranges do not)."""
    ordered = sorted(ranges)
    return any(b[0] <= a[1] for a, b in pairwise(ordered))


def multipart_heads(
    ranges: Sequence[ByteRange], total: int, boundary: str
) -> tuple[list[bytes], bytes]:
    """The ``multipart/byteranges`` framing around the parts: one head per range (each part is
    ``head + data + CRLF``) and the closing delimiter. Lets a server compute the body's
    length and stream the parts without holding them."""
    heads = [
        (
            f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Range: bytes {first}-{last}/{total}\r\n\r\n"
        ).encode()
        for first, last in ranges
    ]
    return heads, f"--{boundary}--\r\n".encode()


def multipart_length(ranges: Sequence[ByteRange], heads: Sequence[bytes], closing: bytes) -> int:
    """Byte length of the multipart body framed by ``heads`` and ``closing``."""
    data = sum(last - first + 1 for first, last in ranges)
    return sum(len(h) + 2 for h in heads) + data + len(closing)


def multipart_byteranges(
    parts: Sequence[tuple[ByteRange, bytes]], total: int, boundary: str
) -> bytes:
    """A whole ``multipart/byteranges`` body; parts appear in the order they were requested."""
    heads, closing = multipart_heads([r for r, _ in parts], total, boundary)
    return b"".join(h + data + b"\r\n" for h, (_, data) in zip(heads, parts, strict=True)) + closing
