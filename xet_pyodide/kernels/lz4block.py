"""LZ4 block format details shared by the reference codec and :mod:`.lz4frame`:
the variable-length literal and match length fields (a token nibble of 15, then bytes of 255
until one is smaller)."""

from __future__ import annotations

from ..errors import XetFormatError
from .api import Buffer


def read_length(src: Buffer, pos: int, nibble: int, what: str) -> tuple[int, int]:
    """The length whose token nibble is ``nibble``, extended from ``src[pos:]`` when it is 15;
    returns ``(length, position after it)``. A truncated field raises ``XetFormatError``
    ("LZ4 block truncated in <what>")."""
    length = nibble
    if length == 15:
        n = len(src)
        while True:
            if pos >= n:
                raise XetFormatError(f"LZ4 block truncated in {what}")
            byte = src[pos]
            pos += 1
            length += byte
            if byte != 255:
                break
    return length, pos


def length_bytes(length: int) -> bytes:
    """The bytes that follow a token nibble of 15 to encode ``length`` (>= 15)."""
    rest = length - 15
    return b"\xff" * (rest // 255) + bytes((rest % 255,))


__all__ = ["length_bytes", "read_length"]
