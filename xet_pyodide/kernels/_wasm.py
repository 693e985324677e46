"""The WebAssembly kernels, independent of the runtime that executes them.

:class:`WasmKernels` implements :class:`~xet_pyodide.kernels.api.Kernels` over an
:class:`Instance` adapter: an instantiated ``xet_kernels.wasm`` plus "copy bytes in", "copy bytes
out" and "call export". The adapters live in ``_load_wasmtime.py`` (CPython) and
``_load_pyodide.py`` (``js.WebAssembly``); nothing here knows which one it runs on.

Every call follows the same pattern: ``xk_reserve(n)`` makes sure the module's scratch arena
holds ``n`` bytes and returns its base; we lay out inputs and outputs at fixed offsets from that
base, copy the inputs in, call the kernel, copy the outputs out. The arena is reused by the next
call, so memory only grows to the largest single call. Big inputs of the streaming kernels (gear
scan, CRC) and big BLAKE3 batches are cut into pieces of about :data:`PIECE` bytes so that the
arena stays small even for 64 MiB xorbs. The C ABI is documented in ``docs/kernels.md``.
"""

from __future__ import annotations

import struct
import threading
from array import array
from bisect import bisect_right
from collections.abc import Callable, Sequence
from importlib import resources
from itertools import accumulate
from typing import Protocol

from ..errors import XetFormatError, XetKernelError
from .api import Buffer

#: Bumped in csrc/arena.c whenever an export changes meaning.
ABI_VERSION = 1
#: Largest piece of a streamable input copied into the module in one go.
PIECE = 8 << 20
WASM_FILE = "xet_kernels.wasm"

_U64 = 0xFFFF_FFFF_FFFF_FFFF
_LZ4_ERRORS = {
    -1: "LZ4 block truncated",
    -2: "LZ4 match offset is zero or points before the start of the output",
    -3: "LZ4 output exceeds the expected size",
}


class Instance(Protocol):
    """What :class:`WasmKernels` needs from a runtime: one instance of ``xet_kernels.wasm``."""

    #: Short runtime name, e.g. ``"wasmtime"`` or ``"js"``.
    name: str

    def func(self, name: str) -> Callable[..., int]:
        """The export ``name`` as a Python callable taking and returning ints (i32 results
        come back signed)."""
        ...

    def write(self, ptr: int, data: Buffer) -> None:
        """Copy ``data`` (a 1-D byte buffer) to linear memory at ``ptr``."""
        ...

    def read(self, ptr: int, n: int) -> bytes:
        """Copy ``n`` bytes of linear memory starting at ``ptr``."""
        ...

    def memory_size(self) -> int:
        """Current size of linear memory in bytes."""
        ...

    def refresh(self) -> None:
        """Linear memory may have grown (and moved): rebuild any cached view of it."""
        ...


def read_wasm_bytes() -> bytes:
    """The packaged ``xet_kernels.wasm`` (package data of ``xet_pyodide.kernels``)."""
    try:
        return resources.files(__package__).joinpath(WASM_FILE).read_bytes()
    except (FileNotFoundError, OSError) as exc:
        raise XetKernelError(
            f"{WASM_FILE} is missing from xet_pyodide/kernels: run `bash scripts/build_kernels.sh` "
            "(or set XET_PYODIDE_KERNELS=reference for the slow pure-Python backend)"
        ) from exc


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
        self._lz4_c = f("xk_lz4_compress")
        self._lz4_d = f("xk_lz4_decompress")
        self._bg4_s = f("xk_bg4_split")
        self._bg4_r = f("xk_bg4_regroup")
        self._crc = f("xk_crc64_nvme")
        self._xxh = f("xk_xxh32")
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
                # Messages first..last-1 make one batch of at most PIECE bytes (at least one
                # message, whatever its size); prefix sums + bisect keep this loop per batch,
                # not per message.
                last = max(first + 1, bisect_right(ends, pos + PIECE, first))
                end = ends[last - 1]
                parts.append(self._b3_batch(mv[pos:end], lens[first:last], key))
                first, pos = last, end
        return b"".join(parts)

    def _b3_batch(self, data: memoryview, lens: array, key: bytes) -> bytes:
        count = len(lens)
        lens_off = 32
        out_off = _align(lens_off + 4 * count)
        data_off = _align(out_off + 32 * count)
        base = self._reserve(data_off + len(data))
        inst = self._inst
        inst.write(base, bytes(key) + lens.tobytes())  # key at base, lengths at base + 32
        inst.write(base + data_off, data)
        self._b3_many(base + data_off, base + lens_off, count, base, base + out_off)
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

    # ------------------------------------------------------------------ checksums

    def crc64_nvme(self, data: Buffer, crc: int = 0) -> int:
        mv = _bytes_view(data)
        inst = self._inst
        with self._lock:
            for start in range(0, max(len(mv), 1), PIECE):
                piece = mv[start : start + PIECE]
                base = self._reserve(16 + len(piece))
                inst.write(base, struct.pack("<Q", crc & _U64))
                inst.write(base + 16, piece)
                self._crc(base + 16, len(piece), base)
                (crc,) = struct.unpack("<Q", inst.read(base, 8))
        return crc

    def xxh32(self, data: Buffer, seed: int = 0) -> int:
        mv = _bytes_view(data)
        with self._lock:
            base = self._reserve(len(mv))
            self._inst.write(base, mv)
            # i32 results come back signed; the seed goes in as a signed i32 too.
            seed32 = seed & 0xFFFF_FFFF
            h = self._xxh(base, len(mv), seed32 - (1 << 32) if seed32 >= 1 << 31 else seed32)
        return h & 0xFFFF_FFFF
