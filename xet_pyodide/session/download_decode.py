"""Decoding fetched xorb ranges: chunk records → one contiguous buffer of chunks.

:class:`RecordDecoder` takes the bytes of a fetched range in blocks of any size, as they come
off the network, and decodes every record as soon as it is complete (a record split between
two blocks is reassembled; everything else is read in place), all whole records of a block in
one kernel call (:meth:`~xet_pyodide.kernels.api.Kernels.decode_records`), which can hash
them in the same pass. Records are checked like the core's strict reader does
(:mod:`xet_pyodide.core.xorb`): version 0, a known scheme, sizes within xet-core's limits, raw
chunks with equal sizes, valid LZ4 frames (plain or byte-grouped), exactly the size the header
states. The range must hold exactly the expected number of chunks and nothing after them.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from ..core.hashes import HASH_LEN, MerkleHash, hashes_from_digests, xorb_hash
from ..core.xorb import HEADER, RECORD_HEADER_LEN, check_header
from ..errors import XetFormatError
from ..io.worker_decode import BlobPiece
from ..kernels import get_kernels

Buffer = bytes | bytearray | memoryview


def _uninitialized_factory() -> Callable[[int], bytearray] | None:
    """``PyByteArray_FromStringAndSize(NULL, n)`` through ctypes: a bytearray whose bytes are
    not zero-filled first, or None where ctypes cannot reach the C API."""
    try:
        import ctypes

        make = ctypes.pythonapi.PyByteArray_FromStringAndSize
        make.restype = ctypes.py_object  # a new reference, owned by the result
        make.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t]
        if len(make(None, 1)) != 1:
            return None
    except (ImportError, AttributeError, OSError, TypeError, ValueError):
        return None
    return lambda n: make(None, n)  # type: ignore[no-any-return]


_UNINITIALIZED = _uninitialized_factory()


def output_buffer(n: int) -> bytearray:
    """A ``bytearray`` of ``n`` bytes for the decoder to overwrite, not zero-filled when the
    runtime allows it. Measured in Chromium (``bench/download.py --profile``): zero-filling
    each range's decoded buffer with ``bytearray(n)`` cost the page ~0.25 s per 512 MiB,
    about as much as the LZ4 decoding. Only bytes the decoder wrote are ever read (the tail
    is cut in :meth:`RecordDecoder.finish`)."""
    if n <= 0:
        return bytearray()
    if _UNINITIALIZED is None or n < 1 << 16:
        return bytearray(n)
    return _UNINITIALIZED(n)


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

    def piece(self, start: int, end: int) -> memoryview | BlobPiece:
        """Decoded bytes ``[start, end)``, not copied."""
        return memoryview(self.data)[start:end]

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


class BlobRange(DecodedRange):
    """A range decoded (and hashed, when asked) by the pool worker that read its body:
    ``data`` is ``(parts, starts)``, the JS Blobs of the decoded chunks the worker made (each
    at most 32 MiB, in order) and where each starts; its pieces are those Blobs or slices of
    them (no decoded byte enters this heap)."""

    __slots__ = ()

    @classmethod
    def from_worker(cls, result: Any) -> BlobRange:
        """From the worker's ``{blobs: [Blob], sizes: Uint32Array, digests: Uint8Array |
        null}``."""
        sizes = array("I")
        sizes.frombytes(result.sizes.to_bytes())
        offsets = list(accumulate(sizes, initial=0))
        parts = list(result.blobs)
        starts = list(accumulate((int(b.size) for b in parts), initial=0))
        if starts[-1] != offsets[-1]:
            raise XetFormatError("the worker's Blobs do not hold the decoded chunks")
        decoded = cls((parts, starts), offsets)  # type: ignore[arg-type]
        digests = getattr(result, "digests", None)
        if hasattr(digests, "to_bytes"):  # (JS null when the chunks were not hashed)
            decoded.set_hashes(bytes(digests.to_bytes()))
        return decoded

    def drop(self) -> None:
        """Let go of the Blobs now: this object may live on in a reference cycle (a finished
        task's result) until Python's cyclic collector runs, and meanwhile the Blobs' bytes
        would stay in the browser's Blob storage."""
        self.data = None  # type: ignore[assignment]

    def piece(self, start: int, end: int) -> BlobPiece:
        parts, starts = self.data  # type: ignore[misc]
        end = max(start, min(end, starts[-1]))
        blobs = []
        k = max(0, bisect_right(starts, start) - 1)
        while k < len(parts) and starts[k] < end:
            lo, hi = max(start, starts[k]) - starts[k], min(end, starts[k + 1]) - starts[k]
            whole = lo == 0 and hi == starts[k + 1] - starts[k]
            blobs.append(parts[k] if whole else parts[k].slice(lo, hi))
            k += 1
        return BlobPiece(blobs, end - start)


def check_record_header(
    view: memoryview, pos: int, index: int, num_chunks: int
) -> tuple[int, int, int]:
    """Check the header of chunk record ``index`` (of ``num_chunks`` expected) at ``pos``;
    returns ``(scheme, compressed size, uncompressed size)``."""
    if index >= num_chunks:
        raise XetFormatError(f"fetched range holds more than {num_chunks} chunks")
    try:
        return check_header(*HEADER.unpack_from(view, pos))
    except XetFormatError as exc:
        raise XetFormatError(f"chunk record {index} of a fetched range: {exc}") from None


class RecordDecoder:
    """Incremental decoder of exactly ``num_chunks`` records (see module docstring).

    ``size_hint``: expected decoded size (the output buffer grows if it is too small).
    ``key``: when given, chunks are hashed (keyed BLAKE3) as they are decoded, in the same
    kernel call; :meth:`finish` attaches the hashes.
    """

    def __init__(self, num_chunks: int, size_hint: int = 0, key: bytes | None = None) -> None:
        self.num_chunks = num_chunks
        self.bytes_in = 0
        self._key = key
        self._digests = bytearray()
        self._out = output_buffer(size_hint)
        self._pos = 0
        self._offsets = [0]
        self._carry = bytearray()  # the start of a record split between blocks

    def feed(self, block: Buffer) -> None:
        view = memoryview(block).cast("B")
        self.bytes_in += len(view)
        if self._carry:
            view = self._complete_carry(view)
        used = self._decode(view)
        if used < len(view):
            self._carry += view[used:]

    def _decode(self, view: memoryview) -> int:
        """Decode the whole records at the start of ``view`` (one kernel call, more only when
        the output buffer must grow); returns the bytes used."""
        kernels = get_kernels()
        used = 0
        while True:
            done = len(self._offsets) - 1
            with memoryview(self._out) as out:
                batch = kernels.decode_records(
                    view[used:], self.num_chunks - done, out[self._pos :], self._key, done
                )
            used += batch.consumed
            if batch.sizes:
                ends = accumulate(batch.sizes, initial=self._pos)
                next(ends)  # the starting offset, already the last entry
                self._offsets.extend(ends)
                self._pos = self._offsets[-1]
                self._digests += batch.digests
            if not batch.need:
                break
            grow = max(self._pos + batch.need - len(self._out), len(self._out) // 2)
            self._out.extend(bytes(grow))
        if len(view) - used >= RECORD_HEADER_LEN:
            # Whatever stopped the kernel, a whole header left over means more records than
            # expected (a malformed one would have raised).
            check_record_header(view, used, len(self._offsets) - 1, self.num_chunks)
        return used

    def _complete_carry(self, view: memoryview) -> memoryview:
        """Finish the split record with the head of ``view``; return the rest of ``view``."""
        carry = self._carry
        if len(carry) < RECORD_HEADER_LEN:
            take = min(RECORD_HEADER_LEN - len(carry), len(view))
            carry += view[:take]
            view = view[take:]
            if len(carry) < RECORD_HEADER_LEN:
                return view
        with memoryview(carry) as head:
            _, compressed, _ = check_record_header(
                head, 0, len(self._offsets) - 1, self.num_chunks
            )
        need = RECORD_HEADER_LEN + compressed - len(carry)
        carry += view[:need]
        if need > len(view):
            return view[len(view) :]
        self._carry = bytearray()
        with memoryview(carry) as record:
            self._decode(record)
        return view[need:]

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
        """The decoded chunks (hashed when a key was given); raises :class:`XetFormatError`
        unless exactly ``num_chunks`` whole records were fed."""
        if self._carry or len(self._offsets) - 1 != self.num_chunks:
            raise XetFormatError(
                f"fetched range of {self.bytes_in} bytes holds {len(self._offsets) - 1} whole "
                f"chunk records (+{len(self._carry)} bytes), {self.num_chunks} expected"
            )
        if len(self._out) != self._pos:
            del self._out[self._pos :]
        decoded = DecodedRange(self._out, self._offsets)
        if self._key is not None:
            decoded.set_hashes(bytes(self._digests))
        return decoded


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

    def decode(self, start: int, end: int, key: bytes | None = None) -> DecodedRange:
        """Chunks ``[start, end)`` decoded back to back (and hashed, with ``key``)."""
        r = self.record_offsets
        view = memoryview(self.raw).cast("B")[r[start] : r[end]]
        size = self.unpacked[end] - self.unpacked[start]
        return decode_records(view, end - start, size, key)


def decode_records(
    raw: Buffer, num_chunks: int, size_hint: int = 0, key: bytes | None = None
) -> DecodedRange:
    """Decode exactly ``num_chunks`` records filling all of ``raw`` (hashed, with ``key``)."""
    decoder = RecordDecoder(num_chunks, size_hint, key)
    decoder.feed(raw)
    return decoder.finish()


__all__ = [
    "BlobRange",
    "DecodedRange",
    "RawRange",
    "RecordDecoder",
    "check_record_header",
    "decode_records",
    "output_buffer",
]
