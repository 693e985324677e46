"""``python -m xet_pyodide download``: download one file by hash and size, print one JSON object.

    python -m xet_pyodide download --endpoint URL --token TOKEN HASH SIZE OUT [--range S-E]
    python -m xet_pyodide download [--endpoint URL] --token-url URL \\
        [--token-header 'Authorization: Bearer hf_...'] HASH SIZE OUT [--range S-E]

``--range START-END`` selects bytes ``START..END`` (inclusive, like HTTP; an END past the end
of the file is clamped). ``OUT`` is written as ``OUT.xet-part`` and renamed into place only
when the download is complete (and, for a full download, verified against the file hash).
``--cache-dir DIR`` keeps fetched xorb ranges on disk, so a repeat download fetches nothing.
Output::

    {"hash", "size", "path", "range": [start, end] | null, "bytes_written", "verified",
     "bytes_fetched", "bytes_from_cache", "fetch_requests", "cache_hits", "seconds"}

``verified`` is ``"file"`` when the file hash was recomputed and matched (full downloads);
see ``docs/download.md`` for ranged downloads.
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_auth_arguments, open_session, run_json


def _byte_range(text: str) -> tuple[int, int]:
    first, sep, last = text.partition("-")
    try:
        start, end = int(first), int(last)
    except ValueError:
        start = end = -1
    if not sep or start < 0 or end < start:
        raise argparse.ArgumentTypeError(
            f"expected START-END (inclusive, START <= END), got {text!r}"
        )
    return start, end


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"SIZE must be a non-negative integer, got {text!r}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hash", metavar="HASH", help="Xet file hash (64 hex digits)")
    parser.add_argument("size", metavar="SIZE", type=_size, help="file size in bytes")
    parser.add_argument("out", metavar="OUT", help="where to write the bytes")
    parser.add_argument("--range", type=_byte_range, metavar="START-END",
                        help="only bytes START..END (inclusive)")  # fmt: skip
    add_auth_arguments(parser, token_help="CAS access token (read scope)")
    parser.add_argument("--cache-dir", help="keep fetched xorb ranges in this directory")


async def _download(args: argparse.Namespace) -> dict[str, Any]:
    from ..session.config import SessionConfig

    config = SessionConfig(
        chunk_cache="disk" if args.cache_dir else "none", chunk_cache_dir=args.cache_dir
    )
    async with open_session(args, config) as session:
        stats = await session.download_to_file(
            args.hash, args.size, args.out, byte_range=args.range
        )
    return {
        "hash": stats.file_hash,
        "size": args.size,
        "path": args.out,
        "range": list(args.range) if args.range else None,
        "bytes_written": stats.bytes_total,
        "verified": stats.verified,
        "bytes_fetched": stats.bytes_fetched,
        "bytes_from_cache": stats.bytes_from_cache,
        "fetch_requests": stats.fetch_requests,
        "cache_hits": stats.cache_hits,
        "seconds": round(stats.elapsed, 3),
    }


def run(args: argparse.Namespace) -> int:
    return run_json(args, _download)


__all__ = ["configure", "run"]
