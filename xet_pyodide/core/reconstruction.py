"""File reconstructions (protocol §7.7): the JSON model and download planning, sans-I/O.

A reconstruction answers "which chunks of which xorbs make bytes ``[S, E]`` of this file, and
where can I fetch them". :func:`parse_reconstruction` turns a v1 (``fetch_info``) or v2
(``xorbs``) document into a :class:`Reconstruction`, refusing every malformed or inconsistent
shape with :class:`XetProtocolError` (bad hashes: :class:`XetFormatError`). Then
:func:`plan_download` decides, for each term in file order, which :class:`FetchRange`
serves it and how many decoded bytes to drop in front (``offset_into_first_range``) and to
keep (tail truncation). One fetched range may serve several terms and a chunk may be used
twice; the plan lists each fetch range once, in order of first use, with the index of the last
term that needs it (so a downloader can drop its data right after).

Ranges: chunk ranges are half-open ``[start, end)``; byte ranges are inclusive, as in HTTP.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import XetProtocolError
from .hashes import MerkleHash
from .xorb import RECORD_HEADER_LEN

#: Upper bounds that keep hostile numbers from overflowing anything downstream.
MAX_CHUNK_INDEX = 1 << 32
MAX_XORB_OFFSET = 1 << 40
MAX_TERM_LENGTH = 1 << 40


@dataclass(frozen=True, slots=True)
class Term:
    """One term: chunks ``[chunk_start, chunk_end)`` of ``xorb``, ``unpacked_length`` bytes."""

    xorb: MerkleHash
    chunk_start: int
    chunk_end: int
    unpacked_length: int


@dataclass(frozen=True, slots=True)
class FetchRange:
    """Where to fetch the records of chunks ``[chunk_start, chunk_end)`` of ``xorb``:
    ``GET url`` with ``Range: bytes=byte_start-byte_end`` (inclusive)."""

    xorb: MerkleHash
    url: str
    chunk_start: int
    chunk_end: int
    byte_start: int
    byte_end: int

    @property
    def key(self) -> tuple[MerkleHash, int, int]:
        """Identity of the data (the URL changes from one reconstruction to the next)."""
        return (self.xorb, self.chunk_start, self.chunk_end)

    @property
    def num_bytes(self) -> int:
        return self.byte_end - self.byte_start + 1

    @property
    def num_chunks(self) -> int:
        return self.chunk_end - self.chunk_start

    def covers(self, term: Term) -> bool:
        return (
            self.xorb == term.xorb
            and self.chunk_start <= term.chunk_start
            and term.chunk_end <= self.chunk_end
        )


@dataclass(frozen=True)
class Reconstruction:
    """A parsed reconstruction. ``fetches`` maps each xorb to its ranges (document order)."""

    offset_into_first_range: int
    terms: tuple[Term, ...]
    fetches: Mapping[MerkleHash, tuple[FetchRange, ...]]
    version: int
    _starts: dict[MerkleHash, list[int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def unpacked_length(self) -> int:
        """Decoded bytes of all terms (before the offset is dropped)."""
        return sum(t.unpacked_length for t in self.terms)

    def all_fetches(self) -> list[FetchRange]:
        return [f for ranges in self.fetches.values() for f in ranges]

    def find_fetch(self, term: Term) -> FetchRange:
        """A fetch range of the term's xorb that contains its chunk range."""
        ranges = self.fetches.get(term.xorb, ())
        # Fast path for sorted, non-overlapping ranges (the v2 rule); any order works below.
        starts = self._starts.get(term.xorb)
        if starts is None:
            starts = self._starts[term.xorb] = [f.chunk_start for f in ranges]
        i = bisect_right(starts, term.chunk_start) - 1
        if 0 <= i < len(ranges) and ranges[i].covers(term):
            return ranges[i]
        for candidate in ranges:
            if candidate.covers(term):
                return candidate
        raise XetProtocolError(
            f"reconstruction has no fetch range for chunks [{term.chunk_start}, "
            f"{term.chunk_end}) of xorb {term.xorb.hex()[:16]}"
        )


# --------------------------------------------------------------------------- parsing


def _fail(what: str) -> XetProtocolError:
    return XetProtocolError(f"malformed reconstruction: {what}")


def _int(value: Any, what: str, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"{what} is not an integer ({value!r:.40})")
    if not 0 <= value < limit:
        raise _fail(f"{what} = {value} is out of range")
    return value


def _dict(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _fail(f"{what} is not an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(f"{what} is not a list")
    return value


def _field(obj: Mapping[str, Any], name: str, what: str) -> Any:
    if name not in obj:
        raise _fail(f"{what} has no {name!r}")
    return obj[name]


def _half_open(obj: Any, what: str, limit: int) -> tuple[int, int]:
    d = _dict(obj, what)
    start = _int(_field(d, "start", what), f"{what}.start", limit)
    end = _int(_field(d, "end", what), f"{what}.end", limit + 1)
    if end <= start:
        raise _fail(f"{what} [{start}, {end}) is empty")
    return start, end


def _inclusive(obj: Any, what: str) -> tuple[int, int]:
    d = _dict(obj, what)
    start = _int(_field(d, "start", what), f"{what}.start", MAX_XORB_OFFSET)
    end = _int(_field(d, "end", what), f"{what}.end", MAX_XORB_OFFSET)
    if end < start:
        raise _fail(f"{what} [{start}, {end}] ends before it starts")
    return start, end


def _url(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise _fail(f"{what} is not an http(s) URL")
    return value


def _xorb_hash(text: Any, what: str) -> MerkleHash:
    if not isinstance(text, str):
        raise _fail(f"{what} is not a hash string")
    return MerkleHash.from_hex(text)


def _fetch_range(
    xorb: MerkleHash, url: str, chunks: tuple[int, int], byte_range: tuple[int, int], what: str
) -> FetchRange:
    fetch = FetchRange(xorb, url, chunks[0], chunks[1], byte_range[0], byte_range[1])
    # every chunk record has a header: a byte range cannot hold more chunks than this
    if fetch.num_bytes < RECORD_HEADER_LEN * fetch.num_chunks:
        raise _fail(f"{what}: {fetch.num_bytes} bytes cannot hold {fetch.num_chunks} chunks")
    return fetch


def _parse_term(obj: Any, i: int) -> Term:
    what = f"terms[{i}]"
    d = _dict(obj, what)
    xorb = _xorb_hash(_field(d, "hash", what), f"{what}.hash")
    start, end = _half_open(_field(d, "range", what), f"{what}.range", MAX_CHUNK_INDEX)
    length = _int(_field(d, "unpacked_length", what), f"{what}.unpacked_length", MAX_TERM_LENGTH)
    if length == 0:
        raise _fail(f"{what}.unpacked_length is 0")
    return Term(xorb, start, end, length)


def _parse_fetch_map(
    obj: Any,
    name: str,
    parse_entry: Callable[[MerkleHash, Mapping[str, Any], str], list[FetchRange]],
) -> dict[MerkleHash, tuple[FetchRange, ...]]:
    """``{xorb hash: [entry, ...]}`` (``xorbs`` in v2, ``fetch_info`` in v1), each entry parsed
    by ``parse_entry(xorb, entry, what)``."""
    out: dict[MerkleHash, tuple[FetchRange, ...]] = {}
    for key, entries in _dict(obj, name).items():
        xorb = _xorb_hash(key, f"{name} key")
        ranges: list[FetchRange] = []
        for j, entry in enumerate(_list(entries, f"{name}[{key[:16]}]")):
            what = f"{name}[{key[:16]}][{j}]"
            ranges += parse_entry(xorb, _dict(entry, what), what)
        out[xorb] = tuple(ranges)
    return out


def _v2_entry(xorb: MerkleHash, e: Mapping[str, Any], what: str) -> list[FetchRange]:
    url = _url(_field(e, "url", what), f"{what}.url")
    ranges: list[FetchRange] = []
    for k, r in enumerate(_list(_field(e, "ranges", what), f"{what}.ranges")):
        rw = f"{what}.ranges[{k}]"
        rd = _dict(r, rw)
        chunks = _half_open(_field(rd, "chunks", rw), f"{rw}.chunks", MAX_CHUNK_INDEX)
        byte_range = _inclusive(_field(rd, "bytes", rw), f"{rw}.bytes")
        ranges.append(_fetch_range(xorb, url, chunks, byte_range, rw))
    return ranges


def _v1_entry(xorb: MerkleHash, e: Mapping[str, Any], what: str) -> list[FetchRange]:
    url = _url(_field(e, "url", what), f"{what}.url")
    chunks = _half_open(_field(e, "range", what), f"{what}.range", MAX_CHUNK_INDEX)
    byte_range = _inclusive(_field(e, "url_range", what), f"{what}.url_range")
    return [_fetch_range(xorb, url, chunks, byte_range, what)]


def _parse_v2(xorbs: Any) -> dict[MerkleHash, tuple[FetchRange, ...]]:
    return _parse_fetch_map(xorbs, "xorbs", _v2_entry)


def _parse_v1(fetch_info: Any) -> dict[MerkleHash, tuple[FetchRange, ...]]:
    return _parse_fetch_map(fetch_info, "fetch_info", _v1_entry)


def parse_reconstruction(document: bytes | str | Mapping[str, Any]) -> Reconstruction:
    """Parse and validate a v1 or v2 reconstruction (JSON text or already-decoded object)."""
    if isinstance(document, bytes | str):
        try:
            document = json.loads(document)
        except (ValueError, UnicodeDecodeError):
            raise _fail("not JSON") from None
    doc = _dict(document, "the document")
    offset = _int(
        _field(doc, "offset_into_first_range", "the document"),
        "offset_into_first_range",
        MAX_TERM_LENGTH,
    )
    terms = tuple(
        _parse_term(t, i)
        for i, t in enumerate(_list(_field(doc, "terms", "the document"), "terms"))
    )
    if "xorbs" in doc:
        fetches, version = _parse_v2(doc["xorbs"]), 2
    elif "fetch_info" in doc:
        fetches, version = _parse_v1(doc["fetch_info"]), 1
    elif not terms:
        fetches, version = {}, 2
    else:
        raise _fail("neither 'xorbs' (v2) nor 'fetch_info' (v1) is present")
    if terms and offset >= terms[0].unpacked_length:
        raise _fail(
            f"offset_into_first_range {offset} is not inside the first term "
            f"({terms[0].unpacked_length} bytes)"
        )
    if not terms and offset:
        raise _fail("offset_into_first_range without terms")
    rec = Reconstruction(offset, terms, fetches, version)
    for term in terms:
        rec.find_fetch(term)  # raises when no fetch range covers the term
    return rec


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True, slots=True)
class PlannedTerm:
    """A term of the download: decode ``fetch_index``'s chunks ``[chunk_start, chunk_end)``
    (relative to the term's xorb), drop ``skip`` bytes, keep the next ``take``."""

    term: Term
    fetch_index: int
    skip: int
    take: int


@dataclass(frozen=True)
class DownloadPlan:
    """Terms in file order, each pointing at one of ``fetches`` (listed in order of first use).

    ``last_use[i]``: index in ``terms`` of the last term that reads ``fetches[i]``.
    ``length``: output bytes (sum of ``take``).
    """

    terms: tuple[PlannedTerm, ...]
    fetches: tuple[FetchRange, ...]
    last_use: tuple[int, ...]
    length: int

    def term_file_offsets(self, first_byte: int) -> list[int]:
        """File offset where each term's first decoded byte lies, given that the download's
        first output byte is file byte ``first_byte``."""
        pos = first_byte - (self.terms[0].skip if self.terms else 0)
        out = []
        for planned in self.terms:
            out.append(pos)
            pos += planned.term.unpacked_length
        return out


def plan_download(rec: Reconstruction, length: int | None = None) -> DownloadPlan:
    """Plan the output of ``rec``: all of it, or exactly ``length`` bytes after the offset.

    Raises :class:`XetProtocolError` when the terms hold fewer than ``length`` bytes.
    """
    skip_left = rec.offset_into_first_range
    want = rec.unpacked_length - skip_left if length is None else length
    if want < 0:
        raise _fail("negative length requested")
    index_of: dict[tuple[MerkleHash, int, int, str], int] = {}
    fetches: list[FetchRange] = []
    last_use: list[int] = []
    planned: list[PlannedTerm] = []
    left = want
    for term in rec.terms:
        if left == 0:
            break
        fetch = rec.find_fetch(term)
        ident = (*fetch.key, fetch.url)
        index = index_of.get(ident)
        if index is None:
            index = index_of[ident] = len(fetches)
            fetches.append(fetch)
            last_use.append(0)
        skip = min(skip_left, term.unpacked_length)
        skip_left -= skip
        take = min(term.unpacked_length - skip, left)
        left -= take
        last_use[index] = len(planned)
        planned.append(PlannedTerm(term, index, skip, take))
    if left:
        raise XetProtocolError(f"reconstruction holds {want - left} bytes, {want} were requested")
    return DownloadPlan(tuple(planned), tuple(fetches), tuple(last_use), want)


__all__ = [
    "MAX_CHUNK_INDEX",
    "DownloadPlan",
    "FetchRange",
    "PlannedTerm",
    "Reconstruction",
    "Term",
    "parse_reconstruction",
    "plan_download",
]
