"""File contents the Hub serves or receives itself, through the CAS store:

* :func:`stream_file` — the bytes of a Xet file (or a byte range of it), reconstructed from
  the stored xorbs, for a plain ``GET …/resolve/…`` (a link in a browser, or a client without
  Xet support);
* :func:`sha256_of` — the same bytes through SHA-256: the proof that a shard's sha256 claim is
  true before a commit names the file by it;
* :func:`ingest_file` — a file PUT through the plain LFS ``basic`` transfer, chunked, packed
  into xorbs (:func:`pack_file`) and registered with its shard exactly as a Xet client would
  have done.

All per-byte work runs in the protocol core's kernels; these functions are synchronous and
meant for a worker thread.
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Callable, Iterator
from pathlib import Path

from xet_pyodide.core.chunking import Chunker
from xet_pyodide.core.hashes import MerkleHash, hash_chunks
from xet_pyodide.core.shard import serialize_shard
from xet_pyodide.core.shard_model import FileEntry, Shard, XorbEntry
from xet_pyodide.core.terms import ChunkLocation, build_file_entry
from xet_pyodide.core.xorb import Xorb, XorbBuilder
from xet_pyodide.session.download_decode import decode_records

from .. import native, reconstruction
from ..byteranges import ByteRange
from ..errors import NotFound
from ..layout import XorbLayout
from ..store import Store

#: Chunks decoded per step when streaming (at most 128 KiB each: ≤ 32 MiB per step).
STREAM_CHUNKS = 256
#: Block size for reading an uploaded file.
READ_BLOCK = 8 << 20


def _layout_getter(store: Store) -> Callable[[str], XorbLayout]:
    def get(xorb_hex: str) -> XorbLayout:
        layout = store.layout(xorb_hex)
        if layout is None:  # pragma: no cover - files only reference stored xorbs
            raise NotFound(f"xorb {xorb_hex} is missing")
        return layout

    return get


def stream_file(store: Store, file_hash: str, rng: ByteRange | None) -> Iterator[bytes]:
    """The bytes of Xet file ``file_hash`` (inclusive ``rng``, already clamped), in pieces."""
    row = store.file(file_hash)
    if row is None:
        raise NotFound(f"Xet file {file_hash} is not stored")
    layout = _layout_getter(store)
    p = reconstruction.plan(row, layout, rng)
    skip = p.offset_into_first_range
    remaining = (rng[1] - rng[0] + 1) if rng is not None else row.size
    for term in p.terms:
        lay = layout(term.xorb)
        for start in range(term.start, term.end, STREAM_CHUNKS):
            end = min(start + STREAM_CHUNKS, term.end)
            first, last = lay.byte_range(start, end)
            (raw,) = store.objects.read_ranges("xorb", term.xorb, [(first, last)])
            data = memoryview(decode_records(raw, end - start, lay.unpacked_len(start, end)).data)
            if skip:
                data, skip = data[skip:], 0
            if len(data) > remaining:
                data = data[:remaining]
            remaining -= len(data)
            if data:
                yield bytes(data)
            if remaining <= 0:
                return


def sha256_of(store: Store, file_hash: str) -> str:
    """SHA-256 of Xet file ``file_hash``, reconstructed from its stored xorbs (the bytes
    :func:`stream_file` serves). The xorbs are mapped (mmap), raw chunks are hashed where they
    lie in the page cache and compressed ones decoded natively (:mod:`..native`): at 256 MiB
    this took 0.38 CPU-s through the kernels and decoded copies, ~0.15 s now (docs/browser.md)."""
    row = store.file(file_hash)
    if row is None:
        raise NotFound(f"Xet file {file_hash} is not stored")
    layout = _layout_getter(store)
    digest = hashlib.sha256()
    remaining = row.size
    for term in reconstruction.plan(row, layout, None).terms:
        remaining = hash_xorb_chunks(
            store, digest, term.xorb, layout(term.xorb), term.start, term.end, remaining
        )
        if remaining <= 0:
            break
    return digest.hexdigest()


def hash_xorb_chunks(
    store: Store,
    digest: hashlib._Hash,
    xorb_hex: str,
    lay: XorbLayout,
    start: int,
    end: int,
    remaining: int,
) -> int:
    """Feed chunks ``start``..``end`` of stored xorb ``xorb_hex`` (layout ``lay``) to
    ``digest``, at most ``remaining`` bytes; returns the bytes still to hash. The xorb is
    mapped, raw chunks are hashed where they lie and compressed ones decoded natively. Raises
    :class:`XetFormatError` for a damaged record."""
    first, last = lay.byte_range(start, end)
    with open(store.objects.path("xorb", xorb_hex), "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    records = memoryview(mapped)[first : last + 1]
    done = False
    try:
        decoded, remaining = _hash_records(digest, records, end - start, remaining)
        done = True
    finally:
        records.release()
        try:
            mapped.close()
        except BufferError:
            # A damaged record: the error's traceback still holds the decoder's view of
            # the mapping (unmapped when the error is dropped); without this the typed
            # error would become this BufferError.
            if done:
                raise
    if decoded != lay.unpacked_len(start, end):  # pragma: no cover - validated
        raise OSError(f"xorb {xorb_hex} decodes to other sizes than its footer says")
    return remaining


def _hash_records(
    digest: hashlib._Hash, records: memoryview, count: int, remaining: int
) -> tuple[int, int]:
    """Feed the chunks of ``count`` records to ``digest``, at most ``remaining`` bytes; returns
    (bytes decoded, bytes still to hash). A function of its own so that no view of the
    mapping outlives the call (the caller unmaps it)."""
    decoded = 0
    chunks = native.iter_chunks(records, count)
    try:
        for chunk in chunks:
            n = min(len(chunk), remaining)
            digest.update(chunk if n == len(chunk) else chunk[:n])
            decoded += len(chunk)
            remaining -= n
    finally:
        chunks.close()
    return decoded, remaining


def pack_file(
    path: Path, sha256: bytes, on_xorb: Callable[[Xorb], object]
) -> tuple[FileEntry, list[XorbEntry]]:
    """Chunk the file at ``path`` and pack its chunks into xorbs exactly as a Xet client does,
    handing each xorb to ``on_xorb`` as it is sealed; returns the file's entry (``sha256`` in
    its metadata extension) and the xorb entries of its shard."""
    chunker = Chunker()
    builder = XorbBuilder()
    entries: list[XorbEntry] = []
    hashes: list[MerkleHash] = []
    sizes: list[int] = []
    locations: list[ChunkLocation] = []

    def flush() -> None:
        nonlocal builder
        if len(builder):
            xorb = builder.finish()
            on_xorb(xorb)
            entries.append(XorbEntry.from_chunks(xorb.hash, xorb.chunk_hashes, xorb.chunk_sizes))
            locations.extend((xorb.hash, k) for k in range(xorb.num_chunks))
            builder = XorbBuilder()

    def add(chunks: list[bytes]) -> None:
        if not chunks:
            return
        chunk_hashes = hash_chunks(chunks)
        for data, h in zip(chunks, chunk_hashes, strict=True):
            if not builder.can_add(len(data)):
                flush()
            builder.add(data, h)
        hashes.extend(chunk_hashes)
        sizes.extend(len(c) for c in chunks)

    with open(path, "rb") as f:
        while block := f.read(READ_BLOCK):
            add(chunker.feed(block))
    add(chunker.finish())
    flush()
    return build_file_entry(hashes, sizes, locations, sha256), entries


def ingest_file(store: Store, path: Path, sha256: str, repo: str) -> str:
    """Chunk the file at ``path`` (whose sha256 the caller verified), store its xorbs and a shard
    registering it in ``repo`` (``auth.repo_key`` form), with the sha256 in the metadata
    extension; returns the Xet file hash."""
    entry, entries = pack_file(
        path, bytes.fromhex(sha256), lambda xorb: store.put_xorb(xorb.body, xorb.hash)
    )
    body = serialize_shard(Shard([entry], entries))
    store.put_shard(body, store.parse_shard(body), repo)
    return entry.file_hash.hex()
