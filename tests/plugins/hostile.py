"""Hostile requests against the local CAS server, shared by the tests
(``tests/cpython/test_cas_hostile.py``) and the campaign ``bench/hostile.py``.

Each builder returns bytes or header values that a legitimate client never sends but an
attacker with a token (or a signed URL) can: records claiming 128 KiB from an empty payload,
a shard whose every term spans a whole 8192-chunk xorb, a ``Range`` repeating a signed span.
The ``/proc`` readers measure the server process (Linux only).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

#: A decode-bomb record: LZ4 scheme, empty payload, claims the largest chunk (128 KiB).
BOMB_CLAIM = 128 * 1024


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_rss_mib(pid: int) -> float:
    """High-water mark of the resident set of ``pid`` (``VmHWM``), MiB."""
    return _status_kib(pid, "VmHWM") / 1024


def reset_peak_rss(pid: int) -> None:
    """Restart ``VmHWM`` of ``pid`` from its current resident set (Linux ``clear_refs``)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def rss_mib(pid: int) -> float:
    """Current resident set of ``pid`` (``VmRSS``), MiB."""
    return _status_kib(pid, "VmRSS") / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def decode_bomb(records: int, claim: int = BOMB_CLAIM) -> bytes:
    """A xorb body of ``records`` 8-byte records (LZ4, payload 0, claiming ``claim`` bytes)."""
    from xet_pyodide.core.compression import Scheme
    from xet_pyodide.core.xorb import record_header

    return record_header(Scheme.LZ4, 0, claim) * records


def zero_xorb(chunks: int, *, wrong_hash: bool = False) -> tuple[str, bytes]:
    """``(hash, body)`` of a xorb of ``chunks`` all-zero 128 KiB chunks, LZ4-compressed (about
    520 bytes each): what ``@huggingface/hub``, which caps the serialized size, packs from a
    file of zeros. With ``wrong_hash`` the hash is not the body's: the costliest body a write
    token can make the server decode (every chunk decoded and hashed) before refusing it."""
    from xet_pyodide.core.compression import Scheme, compress_payload
    from xet_pyodide.core.hashes import MerkleHash, chunk_hash, xorb_hash
    from xet_pyodide.core.xorb import MAX_CHUNK_UNCOMPRESSED, record_header

    chunk = bytes(MAX_CHUNK_UNCOMPRESSED)
    scheme, payload = compress_payload(chunk, Scheme.LZ4)
    assert scheme == Scheme.LZ4
    record = record_header(scheme, len(payload), len(chunk)) + bytes(payload)
    h = chunk_hash(chunk)
    claimed = MerkleHash(bytes(32)) if wrong_hash else xorb_hash([(h, len(chunk))] * chunks)
    return claimed.hex(), record * chunks


def wide_xorb(chunks: int = 8192, chunk_size: int = 8, seed: int = 18) -> Any:
    """A valid xorb with the most chunks allowed, each tiny (stored raw): the cheapest thing
    to upload that a shard term can reference 8192 chunks of."""
    from xet_pyodide.core.compression import Scheme
    from xet_pyodide.core.xorb import XorbBuilder

    rng = random.Random(seed)
    builder = XorbBuilder(compression=Scheme.NONE)
    builder.add_chunks([rng.randbytes(chunk_size) for _ in range(chunks)])
    return builder.finish()


def amplified_shard(xorb: Any, terms: int, *, file_hash: Any = None) -> bytes:
    """An upload-form shard with one file of ``terms`` terms, each the whole of ``xorb`` with a
    correct verification hash; the file hash is wrong unless given (the server must hash every
    referenced chunk to find out)."""
    from xet_pyodide.core.hashes import MerkleHash, verification_hash
    from xet_pyodide.core.shard import serialize_shard
    from xet_pyodide.core.shard_model import FileEntry, FileTerm, Shard

    term = FileTerm(xorb.hash, 0, xorb.num_chunks, xorb.num_bytes_in_cas)
    check = verification_hash(xorb.chunk_hashes)
    entry = FileEntry(
        file_hash or MerkleHash(bytes(range(32))), [term] * terms, [check] * terms, None
    )
    return serialize_shard(Shard([entry], []))


def repeated_range(first: int, last: int, times: int) -> str:
    """A ``Range`` value asking for the same inclusive span ``times`` times."""
    return "bytes=" + ",".join([f"{first}-{last}"] * times)


def nested_json(depth: int) -> bytes:
    """``[[[...]]]`` nested ``depth`` deep (parses to a list, or blows the parser's stack)."""
    return b"[" * depth + b"]" * depth


__all__ = [
    "BOMB_CLAIM",
    "amplified_shard",
    "cpu_seconds",
    "decode_bomb",
    "nested_json",
    "peak_rss_mib",
    "repeated_range",
    "reset_peak_rss",
    "rss_mib",
    "wide_xorb",
]
