"""Xet hashes: the ``MerkleHash`` value type and every hash the protocol defines.

All hashes are keyed BLAKE3 (32-byte key, 32-byte output) computed by the kernels. What differs
is the key and the message:

* chunk hash — ``DATA_KEY`` over the uncompressed chunk bytes;
* internal node — ``INTERNAL_NODE_KEY`` over a text listing of the children, one
  ``"<xet hex> : <size>\\n"`` line each;
* xorb hash — root of the variable fan-out Merkle tree over ``(chunk hash, size)``;
* file hash — the same root over all chunks of the file, hashed once more with a zero key;
* verification (term range) hash — ``VERIFICATION_KEY`` over the concatenated raw chunk hashes;
* chunk-hash HMAC (global dedup) — the HMAC key used as BLAKE3 key over the raw chunk hash.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence

from ..errors import XetFormatError
from ..kernels import get_kernels

HASH_LEN = 32

DATA_KEY = bytes.fromhex("6697f5775b9550de3135cbaca597181c9de421109beb2b58b4d0b04b93adf229")
INTERNAL_NODE_KEY = bytes.fromhex(
    "017ec5c7a5472996fd946666b48a02e65ddd536f37c76dd2f86352e64a53713f"
)
VERIFICATION_KEY = bytes.fromhex("7f1857d6ce56ed66127ff913e7a5c3f3a4cd26d5b5db49e64124987f28fb94c3")
FILE_HASH_KEY = bytes(32)

_WORDS = struct.Struct("<4Q")
_HEX_RE = re.compile(r"[0-9a-fA-F]{64}")

#: Merkle aggregation: mean branching factor; a group closes on ``word3 % MEAN == 0``.
MERKLE_MEAN_BRANCHING = 4
#: Merkle aggregation: a group never has more than this many children.
MERKLE_MAX_GROUP = 2 * MERKLE_MEAN_BRANCHING + 1


def _swap_words(raw: bytes) -> bytes:
    """Reverse the bytes inside each 8-byte group (raw order <-> xet-hex / sha256 order)."""
    return raw[7::-1] + raw[15:7:-1] + raw[23:15:-1] + raw[31:23:-1]


class MerkleHash:
    """A 32-byte Xet hash.

    ``str()``/``.hex()`` give the *xet hex* form (each little-endian u64 word printed as 16 hex
    digits) used in URLs, JSON and node texts. Ordering follows the xet-hex strings, which is
    how xet-core sorts files and xorbs inside shards.
    """

    __slots__ = ("_key", "raw")

    ZERO: MerkleHash

    def __init__(self, raw: bytes | bytearray | memoryview) -> None:
        raw = bytes(raw)
        if len(raw) != HASH_LEN:
            raise ValueError(f"a Xet hash is {HASH_LEN} bytes, got {len(raw)}")
        object.__setattr__(self, "raw", raw)
        # Byte-swapped words compare like the xet-hex strings; computed once, used by sorting.
        object.__setattr__(self, "_key", _swap_words(raw))

    raw: bytes
    _key: bytes

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("MerkleHash is immutable")

    @classmethod
    def from_hex(cls, text: str) -> MerkleHash:
        """Parse a xet-hex string (64 hex digits, either case)."""
        if not isinstance(text, str) or not _HEX_RE.fullmatch(text):
            raise XetFormatError(f"not a Xet hash (64 hex digits expected): {text!r:.80}")
        return cls(_swap_words(bytes.fromhex(text)))

    def hex(self) -> str:
        """The xet-hex string of this hash."""
        return self._key.hex()

    def word(self, k: int) -> int:
        """Little-endian u64 word ``k`` (bytes ``8k .. 8k+8``)."""
        if not 0 <= k < 4:
            raise IndexError("a Xet hash has words 0..3")
        return int.from_bytes(self.raw[8 * k : 8 * k + 8], "little")

    def words(self) -> tuple[int, int, int, int]:
        """All four little-endian u64 words."""
        return _WORDS.unpack(self.raw)  # type: ignore[return-value]

    def truncated(self) -> int:
        """The truncated hash used by shard lookup tables (word 0)."""
        return int.from_bytes(self.raw[:8], "little")

    def __str__(self) -> str:
        return self.hex()

    def __repr__(self) -> str:
        return f"MerkleHash({self.hex()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MerkleHash) and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __lt__(self, other: MerkleHash) -> bool:
        return self._key < other._key

    def __le__(self, other: MerkleHash) -> bool:
        return self._key <= other._key

    def __gt__(self, other: MerkleHash) -> bool:
        return self._key > other._key

    def __ge__(self, other: MerkleHash) -> bool:
        return self._key >= other._key

    def __bytes__(self) -> bytes:
        return self.raw

    def __reduce__(self) -> tuple[type[MerkleHash], tuple[bytes]]:
        return (MerkleHash, (self.raw,))


MerkleHash.ZERO = MerkleHash(bytes(HASH_LEN))


# --------------------------------------------------------------------------- leaf hashes


def keyed_hash(data: bytes | bytearray | memoryview, key: bytes) -> MerkleHash:
    """Keyed BLAKE3 of one message."""
    return MerkleHash(get_kernels().blake3_keyed(data, key))


def chunk_hash(data: bytes | bytearray | memoryview) -> MerkleHash:
    """Hash of one chunk's uncompressed bytes."""
    return MerkleHash(get_kernels().blake3_keyed(data, DATA_KEY))


def chunk_hashes(data: bytes | bytearray | memoryview, lengths: Sequence[int]) -> list[MerkleHash]:
    """Hashes of consecutive chunks stored back to back in ``data`` (one kernel call)."""
    if not lengths:
        return []
    return hashes_from_digests(get_kernels().blake3_keyed_many(data, lengths, DATA_KEY))


def hashes_from_digests(digests: bytes | bytearray | memoryview) -> list[MerkleHash]:
    """Split 32-byte digests stored back to back (a batch kernel's output) into hashes."""
    return [MerkleHash(digests[i : i + HASH_LEN]) for i in range(0, len(digests), HASH_LEN)]


def hash_chunks(chunks: Sequence[bytes | bytearray | memoryview]) -> list[MerkleHash]:
    """Hashes of separately held chunks (joined once, then hashed in one batch)."""
    if len(chunks) == 1:
        return [chunk_hash(chunks[0])]
    return chunk_hashes(b"".join(chunks), [len(c) for c in chunks])


# --------------------------------------------------------------------------- Merkle tree


def _node_text(children: Sequence[tuple[MerkleHash, int]]) -> bytes:
    """What an internal node hashes: one ``"<hex> : <size>\\n"`` line per child."""
    return "".join([f"{h._key.hex()} : {size}\n" for h, size in children]).encode("ascii")


def node_hash(children: Sequence[tuple[MerkleHash, int]]) -> tuple[MerkleHash, int]:
    """Internal node over ``(hash, size)`` children: hash of the text listing, summed size."""
    digest = get_kernels().blake3_keyed(_node_text(children), INTERNAL_NODE_KEY)
    return MerkleHash(digest), sum(size for _, size in children)


def _group_end(level: Sequence[tuple[MerkleHash, int]], start: int, final: bool = True) -> int:
    """End (exclusive) of the group that starts at ``start`` in one tree level; with
    ``final=False`` the level may still grow, and 0 means "not decided yet"."""
    remaining = len(level) - start
    if remaining <= 2:
        return len(level) if final else 0
    end = start + min(MERKLE_MAX_GROUP, remaining)
    for k in range(start + 2, end):
        # word 3 of the node's hash decides (word3 % 4 is the low bits of its first byte,
        # byte 24); the first two children never close a group.
        if level[k][0].raw[24] % MERKLE_MEAN_BRANCHING == 0:
            return k + 1
    return end if final or remaining >= MERKLE_MAX_GROUP else 0


def _reduce(level: list[tuple[MerkleHash, int]], final: bool) -> list[tuple[MerkleHash, int]]:
    """Hash the groups of ``level`` that are decided (all of them if ``final``) into their
    parent nodes, in one kernel call, and remove those children from ``level``."""
    groups: list[Sequence[tuple[MerkleHash, int]]] = []
    start = 0
    while start < len(level) and (end := _group_end(level, start, final)):
        groups.append(level[start:end])
        start = end
    del level[:start]
    if not groups:
        return []
    texts = [_node_text(group) for group in groups]
    digests = get_kernels().blake3_keyed_many(
        b"".join(texts), [len(t) for t in texts], INTERNAL_NODE_KEY
    )
    return [
        (h, sum(s for _, s in group))
        for h, group in zip(hashes_from_digests(digests), groups, strict=True)
    ]


def merkle_root(entries: Sequence[tuple[MerkleHash, int]]) -> MerkleHash:
    """Root of xet-core's variable fan-out Merkle tree (ZERO for no entries)."""
    level = list(entries)
    if not level:
        return MerkleHash.ZERO
    while len(level) > 1:
        # A level's nodes are independent: hashed in one batch (one kernel call, not one per
        # node: a 1 GiB file has ~3k of them).
        level = _reduce(level, final=True)
    return level[0][0]


class MerkleBuilder:
    """:func:`merkle_root` of entries fed in order, in bounded memory.

    A group of a level is decided as soon as the node closing it (or its ninth member) has
    arrived, whatever follows; decided groups are hashed into the next level right away and
    their children dropped. So at most :data:`BATCH` entries are held at the bottom and
    ``BATCH / 16`` on each level above, however many are fed: what lets a server check the
    file hash of a shard's file entry without listing every chunk the terms cover.
    """

    #: Entries a level collects before its decided groups are hashed (one kernel call each).
    BATCH = 16384

    def __init__(self) -> None:
        self._levels: list[list[tuple[MerkleHash, int]]] = [[]]
        self._fed = [0]  # entries ever added to each level
        self.count = 0

    @property
    def held(self) -> int:
        """Nodes held right now, all levels together (what bounds this builder's memory)."""
        return sum(len(level) for level in self._levels)

    def add(self, hashes: Sequence[MerkleHash], sizes: Sequence[int]) -> None:
        """Append entries (one size per hash)."""
        if len(hashes) != len(sizes):
            raise ValueError("one size per hash expected")
        self._levels[0].extend(zip(hashes, sizes, strict=True))
        self._fed[0] += len(hashes)
        self.count += len(hashes)
        if len(self._levels[0]) >= self.BATCH:
            self._carry(final=False)

    def _carry(self, final: bool) -> None:
        level = 0
        while level < len(self._levels):
            pending = self._levels[level]
            if final and self._fed[level] == 1:
                break  # the only node this level ever had: the root
            # level 0 waits for a full batch; the levels above (4x fewer nodes each) are
            # carried as soon as they hold a few groups, so that none of them piles up
            if final or len(pending) >= (self.BATCH if level == 0 else self.BATCH // 16):
                parents = _reduce(pending, final)
                if parents:
                    if level + 1 == len(self._levels):
                        self._levels.append([])
                        self._fed.append(0)
                    self._levels[level + 1].extend(parents)
                    self._fed[level + 1] += len(parents)
            level += 1

    def root(self) -> MerkleHash:
        """The root over everything added (ZERO if nothing was). Ends the builder."""
        if not self.count:
            return MerkleHash.ZERO
        self._carry(final=True)
        return self._levels[-1][0][0]

    def file_hash(self) -> MerkleHash:
        """:func:`file_hash` of the entries added, as if they were a file's chunks."""
        return keyed_hash(self.root().raw, FILE_HASH_KEY) if self.count else MerkleHash.ZERO


def xorb_hash(entries: Sequence[tuple[MerkleHash, int]]) -> MerkleHash:
    """Xorb hash: Merkle root over the xorb's ``(chunk hash, uncompressed size)`` list."""
    return merkle_root(entries)


def file_hash(entries: Sequence[tuple[MerkleHash, int]]) -> MerkleHash:
    """File hash over all chunks of the file; 32 zero bytes for an empty file."""
    if not entries:
        return MerkleHash.ZERO
    return keyed_hash(merkle_root(entries).raw, FILE_HASH_KEY)


# --------------------------------------------------------------------------- other hashes


def verification_hash(hashes: Sequence[MerkleHash]) -> MerkleHash:
    """Term verification (range) hash over the chunk hashes of ``[chunk_start, chunk_end)``."""
    return keyed_hash(b"".join(h.raw for h in hashes), VERIFICATION_KEY)


def hmac_hash(h: MerkleHash, key: bytes | MerkleHash) -> MerkleHash:
    """Global-dedup protection of a chunk hash: keyed BLAKE3 with the shard's HMAC key."""
    raw_key = key.raw if isinstance(key, MerkleHash) else bytes(key)
    if len(raw_key) != HASH_LEN:
        raise ValueError("an HMAC key is 32 bytes")
    return keyed_hash(h.raw, raw_key)


def sha256_to_xet(digest: bytes) -> MerkleHash:
    """Store a SHA-256 digest the way shards do: ``xet_hex(result) == hexdigest``."""
    if len(digest) != HASH_LEN:
        raise ValueError("a SHA-256 digest is 32 bytes")
    return MerkleHash(_swap_words(bytes(digest)))


def xet_to_sha256(h: MerkleHash) -> bytes:
    """Inverse of :func:`sha256_to_xet`: the ordinary SHA-256 digest bytes."""
    return _swap_words(h.raw)


__all__ = [
    "DATA_KEY",
    "FILE_HASH_KEY",
    "HASH_LEN",
    "INTERNAL_NODE_KEY",
    "VERIFICATION_KEY",
    "MerkleBuilder",
    "MerkleHash",
    "chunk_hash",
    "chunk_hashes",
    "file_hash",
    "hash_chunks",
    "hashes_from_digests",
    "hmac_hash",
    "keyed_hash",
    "merkle_root",
    "node_hash",
    "sha256_to_xet",
    "verification_hash",
    "xet_to_sha256",
    "xorb_hash",
]
