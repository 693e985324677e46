"""Xorbs: chunk records, the builder that packs new chunks, and the strict record decoder.

A xorb body (what is uploaded) is a run of chunk records, each an 8-byte header
``version u8 | compressed_size u24 | scheme u8 | uncompressed_size u24`` followed by the payload.
A stored xorb additionally ends with a footer (:mod:`.xorb_footer`). The header layout, its
checks and the limits live below the core, in :mod:`xet_pyodide.kernels.records` (re-exported
here).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from ..errors import XetFormatError, XetIntegrityError
from ..kernels import get_kernels
from ..kernels.records import (
    HEADER,
    MAX_CHUNK_COMPRESSED,
    MAX_CHUNK_UNCOMPRESSED,
    RECORD_HEADER_LEN,
    check_header,
    record_header,
)
from .compression import Scheme, choose_scheme, decompress_payload
from .hashes import DATA_KEY, MerkleHash, chunk_hash, hash_chunks, hashes_from_digests, xorb_hash
from .xorb_footer import FOOTER_IDENT, XorbFooter, build_footer, has_footer, parse_footer

MAX_XORB_BYTES = 64 * 1024 * 1024
MAX_XORB_CHUNKS = 8192
#: The most a valid xorb can unpack to: every chunk at its largest. hf_xet and this package
#: stop at 64 MiB unpacked, but ``@huggingface/hub`` caps the *serialized* size, so a xorb of
#: compressible chunks from it unpacks past 64 MiB (all-zero chunks: to this limit). A server
#: must accept it; it decodes through a window, so only CPU follows this number.
MAX_XORB_UNPACKED = MAX_XORB_CHUNKS * MAX_CHUNK_UNCOMPRESSED
#: hf_xet re-runs the compression analysis every this many chunks of a file segment.
COMPRESSION_RETEST_INTERVAL = 32

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """One chunk record of a xorb body; ``payload`` is a view into the body."""

    scheme: int
    compressed_size: int
    uncompressed_size: int
    payload: Buffer
    #: Byte offset of the record (its header) in the body.
    offset: int = 0

    @property
    def end(self) -> int:
        """Byte offset just after this record."""
        return self.offset + RECORD_HEADER_LEN + self.compressed_size


def encode_chunk(data: Buffer, scheme: Scheme = Scheme.LZ4) -> bytes:
    """A complete chunk record (header + payload), raw when compression does not shrink it
    (one kernel call: :meth:`~xet_pyodide.kernels.api.Kernels.encode_record`)."""
    return get_kernels().encode_record(data, scheme)


def encode_chunks(
    chunks: Sequence[Buffer], schemes: Buffer, out: bytearray, crc: int | None = None
) -> int | None:
    """Append the records of consecutive chunks to ``out`` (``schemes``: one byte per chunk),
    the same bytes as :func:`encode_chunk` on each, one kernel call per ~512 KiB of chunks
    (:meth:`~xet_pyodide.kernels.api.Kernels.encode_records`). With ``crc`` (the CRC-64/NVME
    of what ``out`` held, 0 to start), returns it continued over the records, computed in the
    same pass; else None."""
    return get_kernels().encode_records(chunks, schemes, out, crc)


def decode_record(record: ChunkRecord) -> bytes:
    """The uncompressed chunk of a record (length checked against the header)."""
    return decompress_payload(record.scheme, record.payload, record.uncompressed_size)


def _parse_header(view: memoryview, pos: int) -> ChunkRecord:
    if len(view) - pos < RECORD_HEADER_LEN:
        raise XetFormatError(f"xorb truncated in the chunk header at offset {pos}")
    try:
        scheme, compressed, uncompressed = check_header(*HEADER.unpack_from(view, pos))
    except XetFormatError as exc:
        raise XetFormatError(f"{exc} (chunk record at offset {pos})") from None
    start = pos + RECORD_HEADER_LEN
    if compressed > len(view) - start:
        raise XetFormatError(f"xorb truncated in the chunk payload at offset {pos}")
    return ChunkRecord(scheme, compressed, uncompressed, view[start : start + compressed], pos)


def iter_records(body: Buffer) -> Iterator[ChunkRecord]:
    """Chunk records of a xorb body, in order; stops at the end or at a ``XETBLOB`` footer."""
    view = memoryview(body).cast("B")
    pos = 0
    while pos < len(view):
        if view[pos : pos + len(FOOTER_IDENT)] == FOOTER_IDENT:
            return
        record = _parse_header(view, pos)
        yield record
        pos = record.end


def decode_xorb(body: Buffer) -> list[bytes]:
    """Every chunk of a xorb body (or a run of whole records), decoded and size-checked."""
    return [decode_record(r) for r in iter_records(body)]


@dataclass(slots=True)
class Xorb:
    """A complete xorb: upload body plus what shards and footers need to know about it."""

    hash: MerkleHash
    #: Upload body: chunk records only, no footer.
    body: bytes
    chunk_hashes: list[MerkleHash]
    chunk_sizes: list[int]
    #: Cumulative byte offsets of the records, starting with 0 and ending with ``len(body)``.
    record_offsets: list[int]
    footer: XorbFooter | None = field(default=None)

    @property
    def num_chunks(self) -> int:
        return len(self.chunk_hashes)

    @property
    def num_bytes_in_cas(self) -> int:
        """Sum of the uncompressed chunk sizes."""
        return sum(self.chunk_sizes)

    @property
    def entries(self) -> list[tuple[MerkleHash, int]]:
        """``(chunk hash, size)`` pairs, the input of the xorb hash."""
        return list(zip(self.chunk_hashes, self.chunk_sizes, strict=True))

    def unpacked_offsets(self) -> list[int]:
        """Cumulative uncompressed offsets, starting with 0 (chunk k = ``[o[k], o[k+1])``)."""
        out = [0]
        for size in self.chunk_sizes:
            out.append(out[-1] + size)
        return out

    def byte_range(self, chunk_start: int, chunk_end: int) -> tuple[int, int]:
        """Half-open byte range of the records of chunks ``[chunk_start, chunk_end)``."""
        if not 0 <= chunk_start < chunk_end <= self.num_chunks:
            raise ValueError(f"bad chunk range [{chunk_start}, {chunk_end})")
        return self.record_offsets[chunk_start], self.record_offsets[chunk_end]

    def build_footer(self, nonce: bytes = bytes(16)) -> bytes:
        """The V1 footer a server appends when storing this xorb."""
        return build_footer(
            self.chunk_hashes,
            self.record_offsets[1:],
            self.unpacked_offsets()[1:],
            self.hash,
            nonce,
        )

    def stored(self) -> bytes:
        """Body followed by the footer: the stored-object form."""
        return self.body + self.build_footer()


class XorbBuilder:
    """Packs chunks into one xorb, compressing them as they arrive.

    ``compression=None`` applies hf_xet's policy: within each file segment (see
    :meth:`start_file_segment`), every ``retest_interval`` chunks the first chunk is analysed
    (:func:`choose_scheme`) and the verdict is used for the following chunks. The size limit is
    applied to the worst case (records stored raw), so the serialized xorb never exceeds
    ``max_bytes`` whatever the compression achieves.
    """

    def __init__(
        self,
        compression: Scheme | None = None,
        *,
        retest_interval: int = COMPRESSION_RETEST_INTERVAL,
        max_bytes: int = MAX_XORB_BYTES,
        max_chunks: int = MAX_XORB_CHUNKS,
    ) -> None:
        self._compression = compression
        self._retest = max(1, retest_interval)
        self._max_bytes = max_bytes
        self._max_chunks = max_chunks
        self._records: list[bytes] = []
        self._hashes: list[MerkleHash] = []
        self._sizes: list[int] = []
        self._offsets = [0]
        self._worst_case = 0
        self._segment_index = 0
        self._scheme = Scheme.LZ4

    def __len__(self) -> int:
        return len(self._hashes)

    @property
    def num_bytes(self) -> int:
        """Serialized size so far."""
        return self._offsets[-1]

    @property
    def num_raw_bytes(self) -> int:
        """Sum of the uncompressed chunk sizes so far."""
        return sum(self._sizes)

    def can_add(self, size: int) -> bool:
        """Would a chunk of ``size`` bytes still fit the chunk-count and byte limits?"""
        return (
            len(self._hashes) < self._max_chunks
            and self._worst_case + RECORD_HEADER_LEN + size <= self._max_bytes
        )

    def start_file_segment(self) -> None:
        """Mark the start of another file's chunks: the next chunk is analysed again."""
        self._segment_index = 0

    def add(self, data: Buffer, hash: MerkleHash | None = None) -> int:
        """Append a chunk (hash computed if not given); returns its index in the xorb."""
        size = len(data)
        if size > MAX_CHUNK_UNCOMPRESSED:
            raise ValueError(f"a chunk is at most {MAX_CHUNK_UNCOMPRESSED} bytes, got {size}")
        if not self.can_add(size):
            raise ValueError("the xorb is full; check can_add() first")
        scheme = self._compression
        if scheme is None:
            if self._segment_index % self._retest == 0:
                self._scheme = choose_scheme(data)
            scheme = self._scheme
        self._segment_index += 1
        record = encode_chunk(data, scheme)
        self._records.append(record)
        self._hashes.append(hash if hash is not None else chunk_hash(data))
        self._sizes.append(size)
        self._offsets.append(self._offsets[-1] + len(record))
        self._worst_case += RECORD_HEADER_LEN + size
        return len(self._hashes) - 1

    def add_chunks(
        self, chunks: Sequence[Buffer], hashes: Sequence[MerkleHash] | None = None
    ) -> None:
        """Append several chunks (hashed in one batch if ``hashes`` is not given)."""
        if hashes is None:
            hashes = hash_chunks(chunks)
        for data, h in zip(chunks, hashes, strict=True):
            self.add(data, h)

    def finish(self) -> Xorb:
        """The finished xorb. Raises ``ValueError`` when empty (empty xorbs are never sent)."""
        if not self._hashes:
            raise ValueError("an empty xorb cannot be built")
        entries = list(zip(self._hashes, self._sizes, strict=True))
        return Xorb(
            hash=xorb_hash(entries),
            body=b"".join(self._records),
            chunk_hashes=list(self._hashes),
            chunk_sizes=list(self._sizes),
            record_offsets=list(self._offsets),
        )


#: Decoded bytes held at a time by :func:`load_xorb` when it does not keep the chunks.
DECODE_WINDOW = 4 * 1024 * 1024


def scan_records(
    body: Buffer, max_chunks: int = MAX_XORB_CHUNKS, max_unpacked: int = MAX_XORB_BYTES
) -> tuple[list[int], int]:
    """Walk the record headers of a xorb body (no footer) without decoding anything: returns
    the cumulative record end offsets and the total claimed uncompressed size.

    The limits are checked as the headers are read, so hostile headers cost one pass over at
    most ``max_chunks + 1`` of them and no allocation beyond the offsets: a body with more
    records than ``max_chunks``, or whose records claim more than ``max_unpacked`` bytes
    together (hf_xet's 64 MiB limit applies to the uncompressed sum), raises
    :class:`XetFormatError` before any output buffer exists.
    """
    view = memoryview(body).cast("B")
    ends: list[int] = []
    pos = total = 0
    while pos < len(view):
        if view[pos : pos + len(FOOTER_IDENT)] == FOOTER_IDENT:
            raise XetFormatError("bytes after the last chunk record are not a valid footer")
        if len(ends) == max_chunks:
            raise XetFormatError(f"xorb has more than {max_chunks} chunks")
        record = _parse_header(view, pos)
        total += record.uncompressed_size
        if total > max_unpacked:
            raise XetFormatError(
                f"xorb chunks claim more than {max_unpacked} bytes uncompressed "
                f"(at the record at offset {pos})"
            )
        pos = record.end
        ends.append(pos)
    if not ends:
        raise XetFormatError("a xorb has at least one chunk")
    return ends, total


def load_xorb(
    data: Buffer,
    expected_hash: MerkleHash | None = None,
    *,
    keep_chunks: bool = True,
    max_chunks: int = MAX_XORB_CHUNKS,
    max_unpacked: int = MAX_XORB_BYTES,
) -> tuple[Xorb, list[memoryview]]:
    """Decode and verify a xorb body or stored xorb; returns the xorb and its chunks (views
    into one buffer of the decoded chunks; an empty list with ``keep_chunks=False``).

    The record headers are checked first (:func:`scan_records`: chunk count and claimed
    uncompressed total within the limits), then every chunk is decoded and hashed by the batch
    kernel and the xorb hash recomputed. With ``keep_chunks=False`` (a server validating an
    upload) the chunks are decoded through a window of :data:`DECODE_WINDOW` bytes that is
    reused, so memory follows neither the claimed sizes nor the xorb's decoded size. If a
    footer is present it must agree with the records. Malformed bytes raise
    :class:`XetFormatError`; a hash that differs from ``expected_hash`` or from the footer
    raises :class:`XetIntegrityError`.
    """
    view = memoryview(data).cast("B")
    footer = parse_footer(view) if has_footer(view) else None
    body = view[: footer.footer_start] if footer else view
    record_ends, total = scan_records(body, max_chunks, max_unpacked)
    out = bytearray(total if keep_chunks else min(total, DECODE_WINDOW))
    kernels = get_kernels()
    sizes: list[int] = []
    digests: list[bytes] = []
    pos = written = 0
    while pos < len(body):
        window = memoryview(out)[written:] if keep_chunks else memoryview(out)
        batch = kernels.decode_records(
            body[pos:], len(record_ends) - len(sizes), window, DATA_KEY, len(sizes)
        )
        if not batch.sizes:  # (the records were whole, and each fits the window)
            raise XetFormatError("xorb records did not decode to their stated sizes")
        sizes += batch.sizes
        digests.append(batch.digests)
        pos += batch.consumed
        if keep_chunks:
            written += sum(batch.sizes)
    hashes = hashes_from_digests(b"".join(digests))
    chunks: list[memoryview] = []
    if keep_chunks:
        decoded = memoryview(out)
        offsets = list(accumulate(sizes, initial=0))
        chunks = [decoded[offsets[k] : offsets[k + 1]] for k in range(len(sizes))]
    xorb = Xorb(
        hash=xorb_hash(list(zip(hashes, sizes, strict=True))),
        # (an upload body given as bytes is kept as it is: no 64 MiB copy)
        body=data if isinstance(data, bytes) and footer is None else bytes(body),
        chunk_hashes=hashes,
        chunk_sizes=sizes,
        record_offsets=[0, *record_ends],
        footer=footer,
    )
    if footer is not None:
        _check_footer(xorb, footer)
    if expected_hash is not None and xorb.hash != expected_hash:
        raise XetIntegrityError(f"xorb hashes to {xorb.hash}, expected {expected_hash}")
    return xorb, chunks


def _check_footer(xorb: Xorb, footer: XorbFooter) -> None:
    if footer.record_ends != xorb.record_offsets[1:]:
        raise XetFormatError("xorb footer chunk boundaries do not match the records")
    if footer.unpacked_ends is not None and footer.unpacked_ends != xorb.unpacked_offsets()[1:]:
        raise XetFormatError("xorb footer unpacked offsets do not match the chunks")
    if footer.chunk_hashes != xorb.chunk_hashes:
        raise XetIntegrityError("xorb footer chunk hashes do not match the chunks")
    if footer.xorb_hash != xorb.hash:
        raise XetIntegrityError(f"xorb footer names {footer.xorb_hash}, chunks hash to {xorb.hash}")


__all__ = [
    "COMPRESSION_RETEST_INTERVAL",
    "DECODE_WINDOW",
    "HEADER",
    "MAX_CHUNK_COMPRESSED",
    "MAX_CHUNK_UNCOMPRESSED",
    "MAX_XORB_BYTES",
    "MAX_XORB_CHUNKS",
    "MAX_XORB_UNPACKED",
    "RECORD_HEADER_LEN",
    "ChunkRecord",
    "Scheme",
    "Xorb",
    "XorbBuilder",
    "XorbFooter",
    "build_footer",
    "check_header",
    "decode_record",
    "decode_xorb",
    "encode_chunk",
    "encode_chunks",
    "iter_records",
    "load_xorb",
    "parse_footer",
    "record_header",
    "scan_records",
]
