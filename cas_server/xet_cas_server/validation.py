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
    MerkleBuilder,
    MerkleHash,
    hashes_from_digests,
    keyed_hash,
    verification_hash,
    xorb_hash,
)
from xet_pyodide.core.shard import is_dedup_eligible_hash, parse_shard
from xet_pyodide.core.shard_model import FileEntry, Shard, XorbEntry
from xet_pyodide.core.xorb import (
    MAX_XORB_CHUNKS,
    MAX_XORB_UNPACKED,
    Xorb,
    load_xorb,
    scan_records,
)
from xet_pyodide.core.xorb_footer import has_footer
from xet_pyodide.errors import XetFormatError, XetIntegrityError

from . import native
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
    """Decode every chunk, re-hash, recompute the xorb hash; rebuild the stored footer.

    The work runs on the native libraries (:mod:`.native`); a body they find malformed goes
    through the protocol core's reader on the kernels, which names the problem (the same
    messages as ever)."""
    if not has_footer(body):
        try:
            return _validate_native(body, claimed)
        except XetFormatError:
            pass
    return _validate_kernels(body, claimed)


def _validate_native(body: bytes | bytearray | memoryview, claimed: MerkleHash) -> ValidXorb:
    """:func:`validate_xorb` on :mod:`.native`: the same checks, limits and results as the core's
    ``load_xorb(..., keep_chunks=False)`` (records scanned by the same function first, so the
    limits apply before anything is decoded); raw chunks are hashed in place."""
    ends, _ = scan_records(body, MAX_XORB_CHUNKS, MAX_XORB_UNPACKED)
    digests, sizes = native.hash_records(body, ends)
    hashes = hashes_from_digests(digests)
    computed = xorb_hash(list(zip(hashes, sizes, strict=True)))
    if computed != claimed:
        raise InvalidObject(
            f"xorb content does not match its hash: xorb hashes to {computed}, expected {claimed}"
        )
    xorb = Xorb(computed, b"", hashes, sizes, [0, *ends])
    unpacked = xorb.unpacked_offsets()[1:]
    layout = XorbLayout(computed, hashes, ends, unpacked)
    return ValidXorb(layout, xorb.build_footer(), unpacked[-1])


def _validate_kernels(body: bytes | bytearray | memoryview, claimed: MerkleHash) -> ValidXorb:
    """:func:`validate_xorb` through the protocol core on the kernels."""
    try:
        # Limits (8192 chunks, 128 KiB per chunk) are checked on the record headers before
        # anything is decoded; chunks go through a small reused window, so memory never
        # follows the claimed sizes. The unpacked total may pass 64 MiB: @huggingface/hub caps
        # the serialized size, and its xorbs of compressible data unpack to more.
        xorb, _ = load_xorb(body, claimed, keep_chunks=False, max_unpacked=MAX_XORB_UNPACKED)
    except XetIntegrityError as e:
        raise InvalidObject(f"xorb content does not match its hash: {e}") from None
    except XetFormatError as e:
        raise InvalidObject(f"malformed xorb: {e}") from None
    if xorb.footer is not None:
        raise InvalidObject("xorb upload carries a footer; send the chunk records only")
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

#: How many chunks the terms of one shard may cover beyond the chunks of the distinct xorbs
#: they reference. A file whose content repeats references the same chunks again (one term per
#: repetition), which is legitimate, but every covered chunk costs the file-hash check about a
#: microsecond: without a bound, a 38 KB shard of 400 terms spanning one 8192-chunk xorb made
#: the server hash 3.3 million chunks. With it, validating a shard costs at most
#: (chunks of the xorbs it references + this) chunk steps.
MAX_REPEATED_TERM_CHUNKS = 1 << 20


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
    _check_term_budget(shard, lookup)
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


def _check_term_budget(shard: Shard, lookup: LayoutLookup) -> None:
    """Refuse, before hashing anything, a shard whose terms cover more chunks than the xorbs
    they reference hold plus :data:`MAX_REPEATED_TERM_CHUNKS`."""
    xorb_chunks: dict[MerkleHash, int] = {}
    covered = 0
    for entry in shard.files:
        for i, term in enumerate(entry.terms):
            n = xorb_chunks.get(term.xorb_hash)
            if n is None:
                where = f"file {entry.file_hash} term {i}"
                n = xorb_chunks[term.xorb_hash] = _stored(term.xorb_hash, lookup, where).num_chunks
            covered += max(0, min(term.chunk_end, n) - term.chunk_start)
    budget = sum(xorb_chunks.values()) + MAX_REPEATED_TERM_CHUNKS
    if covered > budget:
        raise InvalidObject(
            f"the shard's terms cover {covered} chunks, more than the {budget} allowed (the "
            f"chunks of the xorbs they reference + {MAX_REPEATED_TERM_CHUNKS} repeated)"
        )


def _check_file(
    entry: FileEntry, lookup: LayoutLookup
) -> tuple[FileRow, tuple[str, str, int] | None]:
    name = f"file {entry.file_hash}"
    verification = entry.verification
    if entry.terms and (verification is None or len(verification) != len(entry.terms)):
        raise InvalidObject(f"{name} has no verification hash for every term")
    # the file hash is computed as the chunks stream by: no list of every covered chunk
    merkle = MerkleBuilder()
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
        merkle.add(hashes, layout.chunk_sizes(start, end))
        terms.append(StoredTerm(term.xorb_hash.raw, start, end, term.unpacked_bytes))
        if i == 0:
            first = (hashes[0].hex(), term.xorb_hash.hex(), start)
    computed = merkle.file_hash()
    if computed != entry.file_hash:
        raise InvalidObject(f"{name}: its chunks hash to {computed}")
    sha = entry.sha256.hex() if entry.sha256 and any(entry.sha256) else None
    return FileRow(entry.file_hash.hex(), sum(t.unpacked_bytes for t in terms), terms, sha), first
