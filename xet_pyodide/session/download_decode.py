"""Decoding fetched xorb ranges: chunk records → one contiguous buffer of chunks.

:class:`RecordDecoder` takes the bytes of a fetched range in blocks of any size, as they come
off the network, and decodes every record as soon as it is complete (a record split between
two blocks is reassembled; everything else is read in place). Records are checked like the
core's strict reader does (:mod:`xet_pyodide.core.xorb`): version 0, a known scheme, sizes
within xet-core's limits, raw chunks with equal sizes; payloads are decoded through the
kernels (LZ4 frame, BG4-LZ4) and must produce exactly the size the header states. The range
must hold exactly the expected number of chunks and nothing after them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..core.compression import Scheme, decompress_payload
from ..core.hashes import HASH_LEN, MerkleHash, hashes_from_digests, xorb_hash
from ..core.xorb import MAX_CHUNK_COMPRESSED, MAX_CHUNK_UNCOMPRESSED, RECORD_HEADER_LEN
from ..errors import XetFormatError

Buffer = bytes | bytearray | memoryview

_HEADER = struct.Struct("<II")
_SCHEMES = frozenset((Scheme.NONE, Scheme.LZ4, Scheme.BG4_LZ4))


@dataclass(slots=True)
class DecodedRange:
    """Chunks ``k = 0..n-1`` of a fetched range are ``data[offsets[k]:offsets[k + 1]]``."""

    data: bytearray
    offsets: list[int]
    hashes: list[MerkleHash] | None = None

    @property
    def num_chunks(self) -> int:
        return len(self.offsets) - 1

    def sizes(self, start: int, end: int) -> list[int]:
        """Sizes of chunks ``[start, end)`` (indices relative to the range)."""
        offsets = self.offsets
        return [offsets[k + 1] - offsets[k] for k in range(start, end)]

    def set_hashes(self, digests: bytes) -> None:
        """Attach the chunk hashes (32 raw bytes per chunk, in order)."""
        if len(digests) != HASH_LEN * self.num_chunks:
            raise ValueError("one 32-byte digest per chunk expected")
        self.hashes = hashes_from_digests(digests)

    def is_whole_xorb(self, xorb: MerkleHash) -> bool:
        """True when these chunks (hashed) are exactly all chunks of ``xorb``: their Merkle
        root is the xorb hash. False says nothing (it may just be part of the xorb)."""
        if self.hashes is None:
            return False
        entries = list(zip(self.hashes, self.sizes(0, self.num_chunks), strict=True))
        return xorb_hash(entries) == xorb


def check_record_header(
    view: memoryview, pos: int, index: int, num_chunks: int
) -> tuple[int, int, int]:
    """Check the header of chunk record ``index`` (of ``num_chunks`` expected) at ``pos``;
    returns ``(scheme, compressed size, uncompressed size)``."""
    if index >= num_chunks:
        raise XetFormatError(f"fetched range holds more than {num_chunks} chunks")
    word0, word1 = _HEADER.unpack_from(view, pos)
    version, compressed = word0 & 0xFF, word0 >> 8
    scheme, uncompressed = word1 & 0xFF, word1 >> 8
    where = f"chunk record {index} of a fetched range"
    if version != 0:
        raise XetFormatError(f"{where}: unsupported version {version}")
    if scheme not in _SCHEMES:
        raise XetFormatError(f"{where}: unknown compression scheme {scheme}")
    if uncompressed > MAX_CHUNK_UNCOMPRESSED or compressed > MAX_CHUNK_COMPRESSED:
        raise XetFormatError(f"{where}: sizes {compressed}/{uncompressed} exceed the limits")
    if scheme == Scheme.NONE and compressed != uncompressed:
        raise XetFormatError(f"{where}: raw chunk with mismatched sizes")
    return scheme, compressed, uncompressed


class RecordDecoder:
    """Incremental decoder of exactly ``num_chunks`` records (see module docstring).

    ``size_hint``: expected decoded size (the output buffer grows if it is too small).
    """

    def __init__(self, num_chunks: int, size_hint: int = 0) -> None:
        self.num_chunks = num_chunks
        self.bytes_in = 0
        self._out = bytearray(max(0, size_hint))
        self._pos = 0
        self._offsets = [0]
        self._carry = bytearray()  # the start of a record split between blocks

    def feed(self, block: Buffer) -> None:
        view = memoryview(block).cast("B")
        self.bytes_in += len(view)
        if self._carry:
            view = self._complete_carry(view)
        pos = 0
        end = len(view)
        while pos < end:
            if end - pos < RECORD_HEADER_LEN:
                break
            scheme, compressed, uncompressed = self._header(view, pos)
            stop = pos + RECORD_HEADER_LEN + compressed
            if stop > end:
                break
            self._emit(scheme, view[pos + RECORD_HEADER_LEN : stop], uncompressed)
            pos = stop
        if pos < end:
            self._carry += view[pos:]

    def _complete_carry(self, view: memoryview) -> memoryview:
        """Finish the split record with the head of ``view``; return the rest of ``view``."""
        carry = self._carry
        if len(carry) < RECORD_HEADER_LEN:
            take = min(RECORD_HEADER_LEN - len(carry), len(view))
            carry += view[:take]
            view = view[take:]
            if len(carry) < RECORD_HEADER_LEN:
                return view
        scheme, compressed, uncompressed = self._header(memoryview(carry), 0)
        need = RECORD_HEADER_LEN + compressed - len(carry)
        carry += view[:need]
        if need > len(view):
            return view[len(view) :]
        self._emit(scheme, memoryview(carry)[RECORD_HEADER_LEN:], uncompressed)
        self._carry = bytearray()
        return view[need:]

    def _header(self, view: memoryview, pos: int) -> tuple[int, int, int]:
        return check_record_header(view, pos, len(self._offsets) - 1, self.num_chunks)

    def _emit(self, scheme: int, payload: memoryview, uncompressed: int) -> None:
        pos, stop = self._pos, self._pos + uncompressed
        if stop > len(self._out):
            self._out.extend(bytes(max(stop - len(self._out), len(self._out) // 2)))
        if scheme == Scheme.NONE:
            self._out[pos:stop] = payload
        else:
            self._out[pos:stop] = decompress_payload(scheme, payload, uncompressed)
        self._pos = stop
        self._offsets.append(stop)

    @property
    def chunks_done(self) -> int:
        """Chunks decoded so far."""
        return len(self._offsets) - 1

    def chunk_offset(self, k: int) -> int:
        """Where decoded chunk ``k`` starts (``k == chunks_done``: the end of the output)."""
        return self._offsets[k]

    def view(self, start: int, end: int) -> memoryview:
        """Decoded bytes ``[start, end)``. Release it before the next :meth:`feed` (the
        output buffer may have to grow)."""
        return memoryview(self._out)[start:end]

    def sizes(self, start: int, end: int) -> list[int]:
        """Sizes of decoded chunks ``[start, end)``."""
        offsets = self._offsets
        return [offsets[k + 1] - offsets[k] for k in range(start, end)]

    def finish(self) -> DecodedRange:
        """The decoded chunks; raises :class:`XetFormatError` unless exactly ``num_chunks``
        whole records were fed."""
        if self._carry or len(self._offsets) - 1 != self.num_chunks:
            raise XetFormatError(
                f"fetched range of {self.bytes_in} bytes holds {len(self._offsets) - 1} whole "
                f"chunk records (+{len(self._carry)} bytes), {self.num_chunks} expected"
            )
        if len(self._out) != self._pos:
            del self._out[self._pos :]
        return DecodedRange(self._out, self._offsets)


class RawRange:
    """A fetched range kept compressed and decoded on demand, a few chunks at a time.

    For ranges that decode to much more than they weigh (compressible data: a 64 MiB xorb
    may hold 1 GiB): holding them decoded would break a stream's memory bound. The record
    headers are checked up front (the same checks as :class:`RecordDecoder`) and give every
    chunk's decoded size; payloads are decoded by :meth:`decode`.
    """

    def __init__(self, raw: Buffer, num_chunks: int) -> None:
        self.raw = raw
        view = memoryview(raw).cast("B")
        records = [0]
        unpacked = [0]
        pos = 0
        while pos < len(view):
            if len(view) - pos < RECORD_HEADER_LEN:
                break
            _, compressed, size = check_record_header(view, pos, len(records) - 1, num_chunks)
            pos += RECORD_HEADER_LEN + compressed
            records.append(pos)
            unpacked.append(unpacked[-1] + size)
        if pos != len(view) or len(records) - 1 != num_chunks:
            raise XetFormatError(
                f"fetched range of {len(view)} bytes holds {len(records) - 1} whole chunk "
                f"records, {num_chunks} expected"
            )
        self.record_offsets = records
        #: Decoded offsets: chunk ``k`` is bytes ``[unpacked[k], unpacked[k + 1])``.
        self.unpacked = unpacked

    def decode(self, start: int, end: int) -> bytearray:
        """Chunks ``[start, end)`` decoded back to back."""
        r = self.record_offsets
        view = memoryview(self.raw).cast("B")[r[start] : r[end]]
        size = self.unpacked[end] - self.unpacked[start]
        return decode_records(view, end - start, size).data


def decode_records(raw: Buffer, num_chunks: int, size_hint: int = 0) -> DecodedRange:
    """Decode exactly ``num_chunks`` records filling all of ``raw``."""
    decoder = RecordDecoder(num_chunks, size_hint)
    decoder.feed(raw)
    return decoder.finish()


__all__ = ["DecodedRange", "RawRange", "RecordDecoder", "check_record_header", "decode_records"]
