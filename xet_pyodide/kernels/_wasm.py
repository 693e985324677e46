"""The WebAssembly kernels, independent of the runtime that executes them.

:class:`WasmKernels` implements :class:`~xet_pyodide.kernels.api.Kernels` over an
:class:`Instance` adapter: an instantiated ``xet_kernels.wasm`` plus "copy bytes in", "copy bytes
out" and "call export" (the contract, and the packaged ``.wasm``, are in ``_instance.py``). The
adapters live in ``_load_wasmtime.py`` (CPython) and ``_load_pyodide.py``
(``js.WebAssembly``); nothing here knows which one it runs on.

Every call follows the same pattern: ``xk_reserve(n)`` makes sure the module's scratch arena
holds ``n`` bytes and returns its base; we lay out inputs and outputs at fixed offsets from that
base, copy the inputs in, call the kernel, copy the outputs out. The arena is reused by the next
call, so memory only grows to the largest single call. Big inputs of the gear scan are cut
into pieces of about :data:`PIECE` bytes, and BLAKE3 batches and CRC inputs go in as
sub-pieces of about :data:`SUB_PIECE` bytes, so that the arena stays small even for 64 MiB
xorbs. The C ABI is documented in ``docs/kernels.md``.
"""

from __future__ import annotations

import struct
import threading
from array import array
from bisect import bisect_right
from collections.abc import Callable, Sequence
from itertools import accumulate

from ..errors import XetFormatError, XetKernelError
from ._instance import Instance
from .api import Buffer, RecordBatch
from .records import MAX_CHUNK_UNCOMPRESSED, check_header

#: Bumped in csrc/arena.c whenever an export changes meaning.
ABI_VERSION = 1
#: Largest piece of a streamable input copied into the module in one go.
PIECE = 8 << 20
#: BLAKE3 batches (whole messages) and CRC inputs go into the module in sub-pieces of about
#: this many bytes, each hashed right after it is copied: the copy then lands in the CPU's L2
#: cache and the hash reads it from there. Chromium, 64 MiB of 64 KiB messages through
#: blake3_keyed_many: 8 MiB copies 2.03-2.24 GB/s, 1 MiB 2.35-2.38, 256 KiB 2.41-2.43 — as
#: fast as hashing data already in the module's memory (2.25-2.53 in the same runs).
SUB_PIECE = 256 << 10
#: One copy_and_call covers at most this many bytes of its source (offsets are i32).
COPY_BATCH_BYTES = 1 << 30
#: A blake3_keyed_many batch (one arena layout: lengths and digests of its messages, one
#: sub-piece of data) holds at most this many messages (and COPY_BATCH_BYTES bytes). Fewer,
#: bigger batches: each costs ~0.15 ms in Pyodide (8 MiB batches were 3-5 % slower than one
#: 64 MiB batch).
B3_BATCH_MESSAGES = 8192

_U64 = 0xFFFF_FFFF_FFFF_FFFF
_LZ4_ERRORS = {
    -1: "LZ4 block truncated",
    -2: "LZ4 match offset is zero or points before the start of the output",
    -3: "LZ4 output exceeds the expected size",
}
#: xk_decode_records: codes -10..-13 are header problems (the message is rebuilt from the
#: header by the core's check, word for word the Python reader's); -14 is a size mismatch.
_RECORD_HEADER_ERRORS = range(-13, -9)
_RECORD_SIZE_ERROR = -14
_FRAME_ERRORS = {
    -20: "LZ4 frame truncated",
    -21: "not an LZ4 frame (bad magic number)",
    -22: "unsupported LZ4 frame version",
    -23: "reserved bits set in the LZ4 frame descriptor",
    -24: "LZ4 frames with a dictionary id are not supported",
    -25: "invalid LZ4 block maximum size code",
    -26: "LZ4 frame content size exceeds the expected size",
    -27: "LZ4 frame header checksum mismatch",
    -28: "LZ4 block exceeds the frame's maximum block size",
    -29: "LZ4 block checksum mismatch",
    -30: "LZ4 frame output exceeds the expected size",
    -31: "LZ4 content checksum mismatch",
    -32: "LZ4 frame content size does not match the decoded data",
    -33: "no LZ4 frame found",
}
#: xk_decode_records per call: at most this many records and this much output (the input is
#: cut at PIECE), so that the arena stays small whatever the caller passes.
_RECORDS_PER_CALL = 8192
_RECORDS_OUT_PIECE = 16 << 20
_RECORD_SCRATCH = MAX_CHUNK_UNCOMPRESSED  # a byte-grouped chunk before regrouping
#: encode_records: chunks per xk_encode_records call, about this many bytes: the chunks and
#: their records (about as much) stay in the CPU's L2/L3 cache between the copy in, the
#: encoding and the copy out (8 MiB pieces were slower than per-chunk calls on the page).
ENCODE_PIECE = 512 << 10


def _bytes_view(data: Buffer) -> memoryview:
    mv = memoryview(data)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    return mv


def _align(n: int, to: int = 16) -> int:
    return (n + to - 1) & -to


class WasmKernels:
    """:class:`~xet_pyodide.kernels.api.Kernels` on top of ``xet_kernels.wasm``.

    Not re-entrant per instance (one scratch arena); a lock makes concurrent calls from threads
    safe under CPython. Extra method: :meth:`memory_size` (for leak tests and diagnostics).
    """

    def __init__(self, instance: Instance, *, warm_up: bool = False) -> None:
        self._inst = instance
        self.name = f"wasm/{instance.name}"
        self._lock = threading.Lock()
        self._base = 0
        self._cap = -1  # bytes known to be available at _base (-1: ask the module)
        f = instance.func
        self._reserve_fn = f("xk_reserve")
        self._gear = f("xk_gear_scan")
        self._b3 = f("xk_blake3_keyed")
        self._b3_many = f("xk_blake3_keyed_many")
        self._crc = f("xk_crc64_nvme")
        self._lz4_c = f("xk_lz4_compress")
        self._lz4_d = f("xk_lz4_decompress")
        self._bg4_s = f("xk_bg4_split")
        self._bg4_r = f("xk_bg4_regroup")
        self._xxh = f("xk_xxh32")
        self._sha = f("xk_sha256_blocks")
        self._records = f("xk_decode_records")
        self._encode = f("xk_encode_record")
        self._encode_many = f("xk_encode_records")
        self._popcount = f("xk_popcount_hist")
        version = f("xk_abi_version")()
        if version != ABI_VERSION:
            raise XetKernelError(
                f"xet_kernels.wasm has ABI version {version}, expected {ABI_VERSION}: "
                "rebuild it with `bash scripts/build_kernels.sh --force`"
            )
        if warm_up:
            self.warm_up()

    # ------------------------------------------------------------------ helpers

    def warm_up(self) -> None:
        """Run every kernel on a few hundred KiB so that a tiering engine (V8: Liftoff first,
        TurboFan once a function is hot) has optimized code ready before real work starts.
        V8 cannot switch a running wasm call to optimized code, so without this the first
        large call of a kernel runs entirely in the baseline tier (several times slower)."""
        data = bytes(range(256)) * 1024  # 256 KiB, compressible but not trivial
        key = bytes(32)
        for _ in range(3):
            self.gear_scan(data)
            self.blake3_keyed_many(data, [65536] * 4, key)
            self.blake3_keyed(data[:3000], key)
            block = self.lz4_compress_block(data[:65536])
            self.lz4_decompress_block(block, 65536)
            self.bg4_regroup(self.bg4_split(data))
            self.crc64_nvme(data)
            self.xxh32(data)
            records = b"".join(
                self.encode_record(data[i : i + 65536], i // 65536 % 3)
                for i in range(0, 4 << 16, 1 << 16)
            )
            self.decode_records(records, 4, memoryview(bytearray(len(data))), key)

    def memory_size(self) -> int:
        """Size of the module's linear memory (grows to the largest call, never shrinks)."""
        return self._inst.memory_size()

    def _reserve(self, n: int) -> int:
        """Base of an arena of at least ``n`` bytes (asks the module only when it must grow)."""
        if n > self._cap:
            base = self._reserve_fn(n)
            if base <= 0:
                raise XetKernelError(f"wasm kernels could not grow memory to {n} bytes")
            self._inst.refresh()
            self._base = base
            self._cap = self._inst.memory_size() - base
        return self._base

    # ------------------------------------------------------------------ gear

    def gear_scan(self, data: Buffer, state: int = 0) -> tuple[list[int], int]:
        mv = _bytes_view(data)
        out: list[int] = []
        state &= _U64
        with self._lock:
            for start in range(0, len(mv), PIECE):
                piece = mv[start : start + PIECE]
                found, state = self._gear_piece(piece, state)
                out.extend([i + start for i in found] if start else found)
        return out, state

    def _gear_piece(self, piece: memoryview, state: int) -> tuple[list[int], int]:
        n = len(piece)
        cap = n // 1024 + 16  # random data: about n / 65536 candidates
        while True:
            data_off = 16
            out_off = _align(data_off + n)
            base = self._reserve(out_off + 4 * cap)
            inst = self._inst
            inst.write(base, struct.pack("<Q", state))
            inst.write(base + data_off, piece)
            count = self._gear(base + data_off, n, base, base + out_off, cap)
            if count <= cap:
                found = array("I")
                found.frombytes(inst.read(base + out_off, 4 * count))
                (new_state,) = struct.unpack("<Q", inst.read(base, 8))
                return found.tolist(), new_state
            cap = count  # adversarial input: more candidates than expected, retry

    # ------------------------------------------------------------------ BLAKE3

    def blake3_keyed(self, data: Buffer, key: bytes) -> bytes:
        mv = _bytes_view(data)
        if len(key) != 32:
            raise ValueError("BLAKE3 key must be 32 bytes")
        n = len(mv)
        with self._lock:
            base = self._reserve(64 + n)
            inst = self._inst
            inst.write(base, key)
            inst.write(base + 64, mv)
            self._b3(base + 64, n, base, base + 32)
            return inst.read(base + 32, 32)

    def blake3_keyed_many(self, data: Buffer, lengths: Sequence[int], key: bytes) -> bytes:
        mv = _bytes_view(data)
        if len(key) != 32:
            raise ValueError("BLAKE3 key must be 32 bytes")
        try:
            lens = array("I", lengths)
        except OverflowError as exc:
            raise ValueError("message lengths must be in 0 .. 2**32-1") from exc
        ends = list(accumulate(lens))
        if (ends[-1] if ends else 0) != len(mv):
            raise ValueError("lengths do not add up to len(data)")
        parts: list[bytes] = []
        with self._lock:
            first = pos = 0
            while first < len(lens):
                # Messages first..last-1 make one batch within the B3_BATCH limits (at least
                # one message, whatever its size); prefix sums + bisect keep this loop per
                # batch, not per message.
                last = min(
                    first + B3_BATCH_MESSAGES,
                    bisect_right(ends, pos + COPY_BATCH_BYTES, first),
                )
                last = max(first + 1, last)
                end = ends[last - 1]
                parts.append(self._b3_batch(mv[pos:end], lens[first:last], key))
                first, pos = last, end
        return b"".join(parts)

    def _b3_batch(self, data: memoryview, lens: array, key: bytes) -> bytes:
        count = len(lens)
        lens_off = 32
        out_off = _align(lens_off + 4 * count)
        data_off = _align(out_off + 32 * count)
        inst = self._inst
        if len(data) <= SUB_PIECE:
            # One sub-piece: copy it and call directly (copy_and_call costs ~13 µs more per
            # call in Pyodide: buffer proxies; it pays off only over several sub-pieces).
            base = self._reserve(data_off + len(data))
            inst.write(base, bytes(key) + lens.tobytes())  # key at base, lengths at base + 32
            inst.write(base + data_off, data)
            self._b3_many(base + data_off, base + lens_off, count, base, base + out_off)
            return inst.read(base + out_off, 32 * count)
        ends = list(accumulate(lens))
        # Sub-pieces of whole messages, about SUB_PIECE bytes each (one message at least).
        subs: list[tuple[int, int, int, int]] = []  # (offset, length, first message, count)
        first = pos = 0
        while first < count:
            last = max(first + 1, bisect_right(ends, pos + SUB_PIECE, first))
            end = ends[last - 1]
            subs.append((pos, end - pos, first, last - first))
            first, pos = last, end
        base = self._reserve(data_off + max(sub[1] for sub in subs))
        inst.write(base, bytes(key) + lens.tobytes())
        steps = array("i")
        for offset, length, first, n in subs:
            steps.extend(
                (
                    offset,
                    length,
                    base + data_off,
                    base + lens_off + 4 * first,
                    n,
                    base,
                    base + out_off + 32 * first,
                )
            )
        inst.copy_and_call("xk_blake3_keyed_many", data, base + data_off, steps, 5)
        return inst.read(base + out_off, 32 * count)

    # ------------------------------------------------------------------ LZ4 block

    def lz4_compress_block(self, data: Buffer) -> bytes:
        mv = _bytes_view(data)
        n = len(mv)
        with self._lock:
            bound = n + n // 255 + 16  # = xk_lz4_bound(n)
            dst_off = _align(n)
            base = self._reserve(dst_off + bound)
            self._inst.write(base, mv)
            size = self._lz4_c(base, n, base + dst_off, bound)
            if size < 0:
                raise XetKernelError(f"LZ4 compressor failed with code {size}")
            return self._inst.read(base + dst_off, size)

    def lz4_decompress_block(self, data: Buffer, max_output: int) -> bytes:
        mv = _bytes_view(data)
        n = len(mv)
        if max_output < 0:
            raise ValueError("max_output must be >= 0")
        with self._lock:
            dst_off = _align(n)
            base = self._reserve(dst_off + max_output)
            self._inst.write(base, mv)
            size = self._lz4_d(base, n, base + dst_off, max_output)
            if size < 0:
                raise XetFormatError(_LZ4_ERRORS.get(size, f"LZ4 block is malformed ({size})"))
            return self._inst.read(base + dst_off, size)

    # ------------------------------------------------------------------ BG4

    def _bg4(self, fn: Callable[..., int], data: Buffer) -> bytes:
        mv = _bytes_view(data)
        n = len(mv)
        with self._lock:
            dst_off = _align(n)
            base = self._reserve(dst_off + n)
            self._inst.write(base, mv)
            fn(base, n, base + dst_off)
            return self._inst.read(base + dst_off, n)

    def bg4_split(self, data: Buffer) -> bytes:
        return self._bg4(self._bg4_s, data)

    def bg4_regroup(self, data: Buffer) -> bytes:
        return self._bg4(self._bg4_r, data)

    def popcount_histograms(self, data: Buffer) -> list[list[int]]:
        mv = _bytes_view(data)
        n = len(mv)
        with self._lock:
            base = self._reserve(_align(n) + 4 * 36)
            self._inst.write(base, mv)
            self._popcount(base, n, base + _align(n))
            counts = array("I")
            counts.frombytes(self._inst.read(base + _align(n), 4 * 36))
        flat = counts.tolist()
        return [flat[9 * k : 9 * k + 9] for k in range(4)]

    # ------------------------------------------------------------------ xorb records

    def encode_record(self, data: Buffer, scheme: int) -> bytes:
        mv = _bytes_view(data)
        n = len(mv)
        if n > _RECORD_SCRATCH:
            raise ValueError(f"a chunk is at most {_RECORD_SCRATCH} bytes, got {n}")
        if scheme not in (0, 1, 2):
            raise ValueError(f"unknown compression scheme {scheme!r}")
        with self._lock:
            scratch_off = _align(n)
            dst_off = scratch_off + _align(n)
            base = self._reserve(dst_off + n + n // 255 + 64)  # = xk_record_bound(n)
            self._inst.write(base, mv)
            size = self._encode(base, n, int(scheme), base + dst_off, base + scratch_off)
            if size < 0:
                raise XetKernelError(f"record encoder failed with code {size}")
            return self._inst.read(base + dst_off, size)

    def encode_records(
        self,
        chunks: Sequence[Buffer],
        schemes: Buffer,
        out: bytearray,
        crc: int | None = None,
    ) -> int | None:
        views = [_bytes_view(c) for c in chunks]
        marks = memoryview(schemes).cast("B")
        if len(marks) != len(views):
            raise ValueError(f"{len(views)} chunks but {len(marks)} schemes")
        lens = array("I", [len(v) for v in views])
        if lens and max(lens) > _RECORD_SCRATCH:
            raise ValueError(f"a chunk is at most {_RECORD_SCRATCH} bytes, got {max(lens)}")
        if marks and max(marks) > 2:
            raise ValueError(f"unknown compression scheme {max(marks)}")
        count = len(views)
        ends = list(accumulate(lens))
        # Calls of about ENCODE_PIECE bytes of chunks (whole chunks, at least one).
        pieces: list[tuple[int, int, int]] = []  # (first chunk, end chunk, bytes)
        first = pos = 0
        while first < count:
            last = max(first + 1, bisect_right(ends, pos + ENCODE_PIECE, first))
            pieces.append((first, last, ends[last - 1] - pos))
            first, pos = last, ends[last - 1]
        if not pieces:
            return crc
        # Arena: the CRC, every chunk's length and scheme, the scratch, one piece of chunks
        # and its records; the lengths, schemes and CRC stay in place for all calls.
        lens_off = 16
        marks_off = lens_off + 4 * count  # written together with the lengths
        scratch_off = _align(marks_off + count)
        src_off = scratch_off + _RECORD_SCRATCH
        largest = max(size for _, _, size in pieces)
        dst_off = _align(src_off + largest)
        bound = largest + largest // 255 + 64 * max(b - a for a, b, _ in pieces)
        inst = self._inst
        with self._lock:
            base = self._reserve(dst_off + bound)  # bound >= the sum of xk_record_bound
            inst.write(base + lens_off, lens.tobytes() + bytes(marks))
            if crc is not None:
                inst.write(base, struct.pack("<Q", crc & _U64))
            for first, last, _ in pieces:
                inst.write_many(base + src_off, views[first:last])
                size = self._encode_many(
                    base + src_off,
                    last - first,
                    base + lens_off + 4 * first,
                    base + marks_off + first,
                    base + dst_off,
                    base + scratch_off,
                    base if crc is not None else 0,
                )
                if size < 0:
                    raise XetKernelError(f"record encoder failed with code {size}")
                out += inst.read(base + dst_off, size)
            if crc is not None:
                (crc,) = struct.unpack("<Q", inst.read(base, 8))
        return crc

    def decode_records(
        self,
        data: Buffer,
        max_chunks: int,
        out: memoryview,
        key: bytes | None = None,
        first_index: int = 0,
    ) -> RecordBatch:
        src = _bytes_view(data)
        dst = _bytes_view(out)
        if key is not None and len(key) != 32:
            raise ValueError("BLAKE3 key must be 32 bytes")
        consumed = written = need = 0
        sizes: list[int] = []
        digests: list[bytes] = []
        with self._lock:
            while len(sizes) < max_chunks and len(src) - consumed >= 8:
                piece = src[consumed : consumed + PIECE]
                room = min(len(dst) - written, _RECORDS_OUT_PIECE)
                limit = min(max_chunks - len(sizes), _RECORDS_PER_CALL, len(piece) // 8)
                count, used, produced, need, digest = self._records_call(
                    piece, limit, dst[written : written + room], key, first_index + len(sizes)
                )
                sizes += count
                consumed += used
                written += produced
                if digest:
                    digests.append(digest)
                if need and count and need <= len(dst) - written:
                    need = 0  # only this call's share of the output was full: go on
                    continue
                if (
                    need
                    or not count
                    or (len(count) < limit and consumed + len(piece) - used >= len(src))
                ):
                    break  # out of room, or the last record is incomplete
        return RecordBatch(consumed, sizes, need, b"".join(digests))

    def _records_call(
        self, piece: memoryview, limit: int, dst: memoryview, key: bytes | None, first: int
    ) -> tuple[list[int], int, int, int, bytes]:
        """One ``xk_decode_records`` call: (sizes, consumed, produced, need, digests)."""
        n, cap = len(piece), len(dst)
        info_off = 32
        digests_off = _align(info_off + 4 * (3 + limit))
        scratch_off = _align(digests_off + (32 * limit if key is not None else 0))
        src_off = scratch_off + _RECORD_SCRATCH
        dst_off = _align(src_off + n)
        base = self._reserve(dst_off + cap)
        inst = self._inst
        if key is not None:
            inst.write(base, key)
        inst.write(base + src_off, piece)
        count = self._records(
            base + src_off,
            n,
            limit,
            base + dst_off,
            cap,
            base + scratch_off,
            base + info_off,
            base if key is not None else 0,
            base + digests_off,
        )
        info = array("I")
        info.frombytes(inst.read(base + info_off, 4 * (3 + max(count, 0))))
        if count < 0:
            raise self._record_error(count, info, piece, first)
        used, produced, need = info[0], info[1], info[2]
        if produced:
            inst.read_into(base + dst_off, dst[:produced])
        digest = inst.read(base + digests_off, 32 * count) if key is not None else b""
        return info[3:].tolist(), used, produced, need, digest

    @staticmethod
    def _record_error(code: int, info: array, piece: memoryview, first: int) -> XetFormatError:
        index, pos = info[0], info[1]
        where = f"chunk record {first + index}"
        if code in _RECORD_HEADER_ERRORS:
            try:
                check_header(*struct.unpack_from("<II", piece, pos))
            except XetFormatError as exc:
                return XetFormatError(f"{where}: {exc}")
        if code == _RECORD_SIZE_ERROR:
            (_, word1) = struct.unpack_from("<II", piece, pos)
            return XetFormatError(
                f"{where}: chunk decodes to {info[2]} bytes, its header says {word1 >> 8}"
            )
        text = _FRAME_ERRORS.get(code) or _LZ4_ERRORS.get(code) or f"malformed ({code})"
        return XetFormatError(f"{where}: {text}")

    # ------------------------------------------------------------------ checksums

    def crc64_nvme(self, data: Buffer, crc: int = 0) -> int:
        # Like BLAKE3: copied in SUB_PIECE steps, each checksummed right after its copy; the
        # CRC so far stays in the module (base) between steps.
        mv = _bytes_view(data)
        inst = self._inst
        with self._lock:
            base = self._reserve(16 + min(len(mv), SUB_PIECE))
            inst.write(base, struct.pack("<Q", crc & _U64))
            if len(mv) <= SUB_PIECE:  # one step: directly (see _b3_batch)
                inst.write(base + 16, mv)
                self._crc(base + 16, len(mv), base)
                return struct.unpack("<Q", inst.read(base, 8))[0]
            for start in range(0, len(mv), COPY_BATCH_BYTES):
                batch = mv[start : start + COPY_BATCH_BYTES]
                steps = array("i")
                for offset in range(0, len(batch), SUB_PIECE):
                    length = min(SUB_PIECE, len(batch) - offset)
                    steps.extend((offset, length, base + 16, length, base))
                inst.copy_and_call("xk_crc64_nvme", batch, base + 16, steps, 3)
            (crc,) = struct.unpack("<Q", inst.read(base, 8))
        return crc

    def sha256_blocks(self, state: bytes, data: Buffer) -> bytes:
        mv = _bytes_view(data)
        if len(state) != 32 or len(mv) % 64:
            raise ValueError("sha256_blocks: a 32-byte state and whole 64-byte blocks")
        inst = self._inst
        words = struct.unpack(">8I", state)
        with self._lock:
            for start in range(0, len(mv), PIECE):
                piece = mv[start : start + PIECE]
                base = self._reserve(32 + len(piece))
                inst.write(base, struct.pack("<8I", *words))
                inst.write(base + 32, piece)
                self._sha(base, base + 32, len(piece) // 64)
                words = struct.unpack("<8I", inst.read(base, 32))
        return struct.pack(">8I", *words)

    def xxh32(self, data: Buffer, seed: int = 0) -> int:
        mv = _bytes_view(data)
        with self._lock:
            base = self._reserve(len(mv))
            self._inst.write(base, mv)
            # i32 results come back signed; the seed goes in as a signed i32 too.
            seed32 = seed & 0xFFFF_FFFF
            h = self._xxh(base, len(mv), seed32 - (1 << 32) if seed32 >= 1 << 31 else seed32)
        return h & 0xFFFF_FFFF
