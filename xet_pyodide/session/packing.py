"""Xorb packing: new chunks → drafts → sealed xorbs ready to upload.

Rules (protocol §4.3, hf_xet's behaviour):

* each file packs its new chunks, in file order, into its own draft, so a file's chunks stay
  contiguous (long terms, cheap reconstructions); a full draft (8192 chunks, or 64 MiB counting
  every record as if stored raw) is sealed and the file continues in a fresh one;
* when a file ends, its last, partial draft joins the session's *shared* draft if both fit in
  one xorb; otherwise the larger of the two is sealed and the smaller becomes the shared draft
  (many small files end up in one xorb, as with hf_xet);
* chunks are compressed as they are added (the scheme is re-chosen every 32 chunks of a file
  segment, then the raw fallback per chunk: :mod:`xet_pyodide.core.compression`), so a draft
  holds exactly its future upload body and merging two drafts is a byte append. The upload
  *stages* the new chunks of a block (:meth:`Packer.stage`: location, hash and size at once)
  and encodes them in one kernel call (:meth:`Packer.flush_file`), the same bytes as one
  :meth:`XorbDraft.add` per chunk; the draft's CRC-64 (upload grants) is kept in that call.

Chunk locations are ``(XorbRef, index)`` pairs. A draft merged into another remembers where it
went, so locations taken before the merge stay valid (:func:`resolve`).
"""

from __future__ import annotations

from collections.abc import Callable

from ..core.chunking import MAX_CHUNK
from ..core.compression import Scheme, choose_scheme
from ..core.crc import crc64_nvme
from ..core.hashes import HASH_LEN, MerkleHash, hashes_from_digests, xorb_hash
from ..core.shard_model import XorbEntry
from ..core.xorb import (
    COMPRESSION_RETEST_INTERVAL,
    MAX_XORB_BYTES,
    MAX_XORB_CHUNKS,
    RECORD_HEADER_LEN,
    encode_chunk,
    encode_chunks,
)
from ..io.transport import DetachedBody

Buffer = bytes | bytearray | memoryview


class XorbRef:
    """Something a chunk location can point to: a xorb of this session (draft or sealed) or
    an existing xorb found by global dedup (:class:`~.dedup.GlobalXorb`)."""

    __slots__ = ("hash",)

    def __init__(self, hash: MerkleHash | None = None) -> None:
        self.hash = hash

    def chunk_hash_raw(self, index: int) -> bytes | None:
        """The plain chunk hash at ``index`` if known (used to extend matches)."""
        return None


Location = tuple[XorbRef, int]


class SealedXorb:
    """A finished xorb waiting for (or in) upload."""

    __slots__ = ("body", "chunk_hashes", "chunk_sizes", "crc64", "file_bytes", "hash")

    def __init__(
        self,
        hash: MerkleHash,
        body: bytearray,
        chunk_hashes: list[MerkleHash],
        sizes: list[int],
        file_bytes: dict[int, int] | None = None,
        crc64: int | None = None,
    ) -> None:
        self.hash = hash
        #: The upload body; during the upload possibly the transport's copy of it.
        self.body: bytearray | DetachedBody | None = body
        self.chunk_hashes = chunk_hashes
        self.chunk_sizes = sizes
        #: Serialized record bytes per file id (per-file upload progress).
        self.file_bytes = file_bytes or {}
        #: CRC-64/NVME of the body when the packer computed it while packing (upload grants
        #: need it), else None.
        self.crc64 = crc64

    @property
    def num_chunks(self) -> int:
        return len(self.chunk_sizes)

    def shard_entry(self) -> XorbEntry:
        # hf_xet 1.8.0 writes num_bytes_on_disk = 0; we do the same (byte-identical shards).
        return XorbEntry.from_chunks(self.hash, self.chunk_hashes, self.chunk_sizes)


class XorbDraft(XorbRef):
    """A xorb being filled. Holds the serialized records (the future upload body)."""

    __slots__ = (
        "_scheme",
        "_segment_index",
        "_staged",
        "_staged_file",
        "_staged_schemes",
        "body",
        "crc",
        "file_bytes",
        "hashes",
        "max_bytes",
        "merge_offset",
        "merged_into",
        "registered",
        "sizes",
        "worst_case",
    )

    def __init__(self, max_bytes: int = MAX_XORB_BYTES, *, checksum: bool = False) -> None:
        super().__init__(None)
        self.max_bytes = max_bytes
        self.body = bytearray()
        #: CRC-64/NVME of ``body`` kept up to date when ``checksum`` (else None): the
        #: batched path computes it in the kernel call that writes the records, while they
        #: are in cache, instead of a separate pass over the sealed body.
        self.crc: int | None = 0 if checksum else None
        self.hashes = bytearray()  # raw chunk hashes, 32 bytes each
        self.sizes: list[int] = []
        self.file_bytes: dict[int, int] = {}  # record bytes per file id
        self.worst_case = 0  # serialized size if every record were stored raw
        self.merged_into: XorbDraft | None = None
        self.merge_offset = 0
        #: Set once a shard listing this xorb was accepted: only then may other commits
        #: reference it.
        self.registered = False
        self._segment_index = 0
        self._scheme = Scheme.LZ4
        #: Chunks counted in ``hashes``/``sizes`` but not yet encoded into ``body`` (see
        #: :meth:`stage`), their schemes (one byte each) and the file they belong to.
        self._staged: list[Buffer] = []
        self._staged_schemes = bytearray()
        self._staged_file = -1

    def __len__(self) -> int:
        return len(self.sizes)

    def chunk_hash_raw(self, index: int) -> bytes | None:
        if 0 <= index < len(self.sizes):
            return bytes(self.hashes[index * HASH_LEN : (index + 1) * HASH_LEN])
        return None

    def can_add(self, size: int) -> bool:
        return (
            len(self.sizes) < MAX_XORB_CHUNKS
            and self.worst_case + RECORD_HEADER_LEN + size <= self.max_bytes
        )

    def can_absorb(self, other: XorbDraft) -> bool:
        return (
            len(self.sizes) + len(other.sizes) <= MAX_XORB_CHUNKS
            and self.worst_case + other.worst_case <= self.max_bytes
        )

    def add(self, data: Buffer, hash_raw: bytes) -> int:
        """Compress and append one chunk; returns its index."""
        self.flush()
        if self._segment_index % COMPRESSION_RETEST_INTERVAL == 0:
            self._scheme = choose_scheme(data)
        self._segment_index += 1
        record = encode_chunk(data, self._scheme)
        self.body += record
        if self.crc is not None:
            self.crc = crc64_nvme(record, self.crc)
        self.hashes += hash_raw
        self.sizes.append(len(data))
        self.worst_case += RECORD_HEADER_LEN + len(data)
        return len(self.sizes) - 1

    def stage(self, data: Buffer, hash_raw: bytes, file_id: int = -1) -> int:
        """Append one chunk like :meth:`add` (its index, hash and size count at once), but
        leave the encoding to :meth:`flush`, which packs all staged chunks in one kernel call
        (the scheme is chosen here, by the same rule, so the body comes out identical).
        ``data`` must stay unchanged until then."""
        if self._staged_file != file_id:
            self.flush()
            self._staged_file = file_id
        if self._segment_index % COMPRESSION_RETEST_INTERVAL == 0:
            self._scheme = choose_scheme(data)
        self._segment_index += 1
        self._staged.append(data)
        self._staged_schemes.append(self._scheme)
        self.hashes += hash_raw
        self.sizes.append(len(data))
        self.worst_case += RECORD_HEADER_LEN + len(data)
        return len(self.sizes) - 1

    def flush(self) -> int:
        """Encode the staged chunks into ``body`` (one kernel call per ~512 KiB of chunks);
        returns the record bytes added (also counted in ``file_bytes``)."""
        if not self._staged:
            return 0
        before = len(self.body)
        self.crc = encode_chunks(self._staged, self._staged_schemes, self.body, self.crc)
        added = len(self.body) - before
        self._staged = []
        self._staged_schemes = bytearray()
        if self._staged_file >= 0:
            fid = self._staged_file
            self.file_bytes[fid] = self.file_bytes.get(fid, 0) + added
        return added

    def absorb(self, other: XorbDraft) -> None:
        """Append ``other``'s chunks; locations in ``other`` now resolve into ``self``."""
        self.flush()
        other.flush()
        other.merged_into = self
        other.merge_offset = len(self.sizes)
        if self.crc is not None:
            self.crc = crc64_nvme(other.body, self.crc)
        self.body += other.body
        self.hashes += other.hashes
        self.sizes += other.sizes
        for fid, n in other.file_bytes.items():
            self.file_bytes[fid] = self.file_bytes.get(fid, 0) + n
        other.file_bytes = {}
        self.worst_case += other.worst_case
        other.body = bytearray()
        other.hashes = bytearray()

    def seal(self) -> SealedXorb:
        """Finish the xorb: compute its hash, hand over the body. The draft keeps only the
        chunk hashes (for extending matches) and its final hash."""
        self.flush()
        hashes = hashes_from_digests(self.hashes)
        self.hash = xorb_hash(list(zip(hashes, self.sizes, strict=True)))
        sealed = SealedXorb(
            self.hash, self.body, hashes, list(self.sizes), self.file_bytes, self.crc
        )
        self.file_bytes = {}
        self.body = bytearray()
        return sealed


def resolve(ref: XorbRef, index: int) -> Location:
    """Follow merges to the draft/xorb that finally holds the chunk."""
    while isinstance(ref, XorbDraft) and ref.merged_into is not None:
        index += ref.merge_offset
        ref = ref.merged_into
    return ref, index


class Packer:
    """Owns the drafts of one commit; hands sealed xorbs to ``on_sealed`` (the upload queue)."""

    def __init__(
        self,
        on_sealed: Callable[[SealedXorb], None],
        *,
        max_xorb_bytes: int = MAX_XORB_BYTES,
        checksum: bool = False,
    ) -> None:
        """``checksum``: keep each xorb's CRC-64/NVME (:attr:`SealedXorb.crc64`) while
        packing, for upload grants."""
        if not RECORD_HEADER_LEN + MAX_CHUNK <= max_xorb_bytes <= MAX_XORB_BYTES:
            raise ValueError(f"max_xorb_bytes must be within [{MAX_CHUNK + 8}, {MAX_XORB_BYTES}]")
        self._on_sealed = on_sealed
        self._max_xorb_bytes = max_xorb_bytes
        self._checksum = checksum
        self._file_drafts: dict[int, XorbDraft] = {}  # file id -> its open draft
        self.drafts: list[XorbDraft] = []  # every draft created by this packer
        self.shared: XorbDraft | None = None
        self.sealed: list[SealedXorb] = []
        self._staged_bytes = 0  # record bytes of staged chunks encoded by a seal in stage()

    def add(self, file_id: int, data: Buffer, hash_raw: bytes) -> tuple[XorbDraft, int, int]:
        """Pack a new chunk of file ``file_id``; returns (draft, index, record length)."""
        draft = self._file_drafts.get(file_id)
        if draft is None or not draft.can_add(len(data)):
            if draft is not None:
                self._seal(draft)
            draft = self._new_draft(file_id)
        draft.flush()
        before = len(draft.body)
        index = draft.add(data, hash_raw)
        record_len = len(draft.body) - before
        draft.file_bytes[file_id] = draft.file_bytes.get(file_id, 0) + record_len
        return draft, index, record_len

    def stage(self, file_id: int, data: Buffer, hash_raw: bytes) -> tuple[XorbDraft, int]:
        """Like :meth:`add` without encoding yet: the chunk's location is final (its draft
        and index), its record is written by the next :meth:`flush` (or whatever seals or
        measures the draft), with the other chunks staged since, in one kernel call.
        ``data`` must stay unchanged until then."""
        draft = self._file_drafts.get(file_id)
        if draft is None or not draft.can_add(len(data)):
            if draft is not None:
                self._staged_bytes += draft.flush()
                self._seal(draft)
            draft = self._new_draft(file_id)
        return draft, draft.stage(data, hash_raw, file_id)

    def _new_draft(self, file_id: int) -> XorbDraft:
        draft = self._file_drafts[file_id] = XorbDraft(
            self._max_xorb_bytes, checksum=self._checksum
        )
        self.drafts.append(draft)
        return draft

    def flush_file(self, file_id: int) -> int:
        """Encode the chunks ``file_id`` staged; returns their record bytes (those of a draft
        sealed on the way included)."""
        draft = self._file_drafts.get(file_id)
        packed = self._staged_bytes + (draft.flush() if draft is not None else 0)
        self._staged_bytes = 0
        return packed

    def flush(self) -> None:
        """Encode every staged chunk (see :meth:`stage`)."""
        for draft in self._file_drafts.values():
            draft.flush()

    def open_bytes(self) -> int:
        """Serialized bytes held by unsealed drafts."""
        self.flush()
        drafts = list(self._file_drafts.values()) + ([self.shared] if self.shared else [])
        return sum(len(d.body) for d in drafts)

    def finish_file(self, file_id: int) -> None:
        """The file ended: merge its partial draft into the shared one, or seal the larger."""
        tail = self._file_drafts.pop(file_id, None)
        if tail is None or not len(tail):
            return
        tail.flush()
        shared = self.shared
        if shared is None:
            self.shared = tail
        elif shared.can_absorb(tail):
            shared.absorb(tail)
        elif len(tail.body) >= len(shared.body):
            self._seal(tail)
        else:
            self._seal(shared)
            self.shared = tail

    def seal_largest(self) -> bool:
        """Seal the biggest unsealed draft (to free memory by uploading it). False if none."""
        self.flush()
        candidates = [(len(d.body), fid) for fid, d in self._file_drafts.items() if len(d)]
        if self.shared is not None and len(self.shared):
            candidates.append((len(self.shared.body), -1))
        if not candidates:
            return False
        _, fid = max(candidates)
        if fid == -1:
            assert self.shared is not None
            self._seal(self.shared)
            self.shared = None
        else:
            self._seal(self._file_drafts.pop(fid))
        return True

    def seal_all(self) -> None:
        for fid in list(self._file_drafts):
            self.finish_file(fid)
        if self.shared is not None and len(self.shared):
            self._seal(self.shared)
        self.shared = None

    def _seal(self, draft: XorbDraft) -> None:
        sealed = draft.seal()
        self.sealed.append(sealed)
        self._on_sealed(sealed)


__all__ = ["Location", "Packer", "SealedXorb", "XorbDraft", "XorbRef", "resolve"]
