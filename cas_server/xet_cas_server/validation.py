"""Validation of uploaded xorbs and shards, on top of the protocol core (xet_pyodide.core).

Nothing here touches storage: functions take bytes (and a way to look up stored xorbs) and
return what should be committed, or raise :class:`InvalidObject` with a reason a client
developer can act on. The caller commits only after a function returned, which is what makes
"invalid leaves no trace" hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xet_pyodide.core.hashes import (
    DATA_KEY,
    MerkleHash,
    file_hash,
    keyed_hash,
    verification_hash,
)
from xet_pyodide.core.shard import is_dedup_eligible_hash, parse_shard
from xet_pyodide.core.shard_model import FileEntry, Shard, XorbEntry
from xet_pyodide.core.xorb import MAX_XORB_CHUNKS, load_xorb
from xet_pyodide.errors import XetFormatError, XetIntegrityError

from .errors import InvalidObject
from .index import FileRow, StoredTerm
from .layout import XorbLayout


@dataclass(frozen=True)
class ValidXorb:
    layout: XorbLayout
    footer: bytes
    unpacked_len: int

    @property
    def dedup_chunks(self) -> list[tuple[str, int]]:
        return [
            (h.hex(), i)
            for i, h in enumerate(self.layout.chunk_hashes)
            if is_dedup_eligible_hash(h)
        ]


def validate_xorb(body: bytes | bytearray | memoryview, claimed: MerkleHash) -> ValidXorb:
    """Decode every chunk, re-hash, recompute the xorb hash; rebuild the stored footer."""
    try:
        xorb, _chunks = load_xorb(body, claimed)
    except XetIntegrityError as e:
        raise InvalidObject(f"xorb content does not match its hash: {e}") from None
    except XetFormatError as e:
        raise InvalidObject(f"malformed xorb: {e}") from None
    if xorb.footer is not None:
        raise InvalidObject("xorb upload carries a footer; send the chunk records only")
    if xorb.num_chunks > MAX_XORB_CHUNKS:
        raise InvalidObject(f"xorb has {xorb.num_chunks} chunks (max {MAX_XORB_CHUNKS})")
    unpacked = xorb.unpacked_offsets()[1:]
    layout = XorbLayout(xorb.hash, xorb.chunk_hashes, xorb.record_offsets[1:], unpacked)
    return ValidXorb(layout, xorb.build_footer(), unpacked[-1])


@dataclass(frozen=True)
class ValidShard:
    files: list[FileRow]
    num_xorbs: int
    #: (chunk hash, xorb hash, chunk index) of file-first chunks: global-dedup entries.
    dedup_chunks: list[tuple[str, str, int]]


LayoutLookup = Callable[[MerkleHash], XorbLayout | None]
Progress = Callable[[int, int], None]


def shard_hash(body: bytes | bytearray | memoryview) -> str:
    """Name of a stored shard: keyed BLAKE3 (DATA_KEY) of its bytes, like xet-core's .mdb names."""
    return keyed_hash(body, DATA_KEY).hex()


def parse_upload(body: bytes | bytearray | memoryview, max_size: int) -> Shard:
    try:
        shard = parse_shard(body, max_size=max_size)
    except XetFormatError as e:
        raise InvalidObject(f"malformed shard: {e}") from None
    if shard.footer is not None and shard.footer.protected:
        raise InvalidObject("an uploaded shard must carry plain chunk hashes (no HMAC key)")
    return shard


def validate_shard(
    shard: Shard,
    lookup: LayoutLookup,
    progress: Progress | None = None,
) -> ValidShard:
    """Check a parsed shard against stored xorbs; returns the rows to commit."""
    for entry in shard.xorbs:
        _check_cas_entry(entry, lookup)
    files: list[FileRow] = []
    dedup: list[tuple[str, str, int]] = []
    total = len(shard.files)
    for n, entry in enumerate(shard.files, 1):
        row, first = _check_file(entry, lookup)
        files.append(row)
        if first is not None:
            dedup.append(first)
        if progress is not None:
            progress(n, total)
    return ValidShard(files, len(shard.xorbs), dedup)


def _stored(h: MerkleHash, lookup: LayoutLookup, where: str) -> XorbLayout:
    layout = lookup(h)
    if layout is None:
        raise InvalidObject(f"{where} references xorb {h} which is not stored; upload it first")
    return layout


def _check_cas_entry(entry: XorbEntry, lookup: LayoutLookup) -> None:
    name = f"CAS entry {entry.xorb_hash}"
    layout = _stored(entry.xorb_hash, lookup, name)
    if len(entry.chunks) != layout.num_chunks:
        raise InvalidObject(
            f"{name} lists {len(entry.chunks)} chunks, the xorb has {layout.num_chunks}"
        )
    for k, chunk in enumerate(entry.chunks):
        if chunk.hash != layout.chunk_hashes[k]:
            raise InvalidObject(f"{name}: chunk {k} hash differs from the stored xorb")
        if chunk.byte_start != layout.unpacked_start(k) or chunk.size != layout.chunk_size(k):
            raise InvalidObject(f"{name}: chunk {k} offset/size differ from the stored xorb")
    if entry.bytes_in_cas != layout.unpacked_ends[-1]:
        raise InvalidObject(f"{name}: num_bytes_in_cas {entry.bytes_in_cas} is wrong")
    if entry.num_bytes_on_disk not in (0, layout.records_len):
        raise InvalidObject(f"{name}: num_bytes_on_disk {entry.num_bytes_on_disk} is wrong")


def _check_file(
    entry: FileEntry, lookup: LayoutLookup
) -> tuple[FileRow, tuple[str, str, int] | None]:
    name = f"file {entry.file_hash}"
    verification = entry.verification
    if entry.terms and (verification is None or len(verification) != len(entry.terms)):
        raise InvalidObject(f"{name} has no verification hash for every term")
    chunks: list[tuple[MerkleHash, int]] = []
    terms: list[StoredTerm] = []
    first: tuple[str, str, int] | None = None
    for i, term in enumerate(entry.terms):
        layout = _stored(term.xorb_hash, lookup, f"{name} term {i}")
        start, end = term.chunk_start, term.chunk_end
        if not 0 <= start < end <= layout.num_chunks:
            raise InvalidObject(f"{name} term {i}: chunk range [{start}, {end}) outside the xorb")
        if term.unpacked_bytes != layout.unpacked_len(start, end):
            raise InvalidObject(f"{name} term {i}: unpacked size {term.unpacked_bytes} is wrong")
        hashes = layout.chunk_hashes[start:end]
        assert verification is not None
        if verification_hash(hashes) != verification[i]:
            raise InvalidObject(f"{name} term {i}: verification hash does not match the xorb")
        chunks.extend((h, layout.chunk_size(k)) for k, h in enumerate(hashes, start))
        terms.append(StoredTerm(term.xorb_hash.raw, start, end, term.unpacked_bytes))
        if i == 0:
            first = (hashes[0].hex(), term.xorb_hash.hex(), start)
    computed = file_hash(chunks)
    if computed != entry.file_hash:
        raise InvalidObject(f"{name}: its chunks hash to {computed}")
    sha = entry.sha256.hex() if entry.sha256 and any(entry.sha256) else None
    return FileRow(entry.file_hash.hex(), sum(t.unpacked_bytes for t in terms), terms, sha), first
