"""CRC-64/NVME of grant uploads, at native speed.

The core's ``crc64_nvme`` runs on the kernels; under CPython without the built wasm that is a
per-byte Python loop (minutes for a 64 MiB xorb). The server therefore uses ``anycrc`` (a
native table-driven implementation, ~8 GB/s); a test cross-checks it against the core.
"""

from __future__ import annotations

import anycrc

_MODEL = anycrc.Model("CRC64-NVME")


def crc64_nvme(data: bytes | bytearray | memoryview) -> int:
    return int(_MODEL.calc(data))


def crc64_nvme_of_pieces(pieces: list[bytes]) -> int:
    """CRC-64/NVME of the concatenation of ``pieces`` (without concatenating them)."""
    crc = 0
    for piece in pieces:
        crc = int(_MODEL.calc(piece, crc))
    return crc
