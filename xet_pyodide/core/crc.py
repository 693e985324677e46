"""CRC-64/NVME, the checksum of xorb upload grants (computed by the kernels)."""

from __future__ import annotations

from ..kernels import get_kernels


def crc64_nvme(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-64/NVME of ``data``; pass a previous result as ``crc`` to continue a stream."""
    return get_kernels().crc64_nvme(data, crc)


__all__ = ["crc64_nvme"]
