"""The SQLite index: which xorbs, shards and files exist, and the global-dedup chunk map.

Durability: WAL journal with ``synchronous=FULL``. In WAL mode ``NORMAL`` already survives a
process crash (``kill -9``) but may lose the last transactions on power loss or an OS crash;
since every acknowledgement of this server promises durability (and the object files are
fsynced anyway), ``FULL`` is the honest setting — it costs one WAL fsync per commit, which is
small next to the xorb file fsync that precedes it.

A row is the commit point of its object: the object file is made durable first, then the row
is inserted in one transaction, then the client gets its answer.
"""

from __future__ import annotations

import contextlib
import sqlite3
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

SCHEMA = """
CREATE TABLE IF NOT EXISTS xorbs (
    hash         TEXT PRIMARY KEY,
    num_chunks   INTEGER NOT NULL,
    records_len  INTEGER NOT NULL,   -- bytes of chunk records (the upload body)
    stored_len   INTEGER NOT NULL,   -- records + footer, the file on disk
    unpacked_len INTEGER NOT NULL,
    created      REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup_chunks (  -- global-dedup eligible chunks only
    chunk_hash   TEXT NOT NULL,
    xorb_hash    TEXT NOT NULL REFERENCES xorbs(hash),
    chunk_index  INTEGER NOT NULL,
    PRIMARY KEY (chunk_hash, xorb_hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shards (
    hash      TEXT PRIMARY KEY,
    size      INTEGER NOT NULL,
    num_files INTEGER NOT NULL,
    num_xorbs INTEGER NOT NULL,
    created   REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (
    hash       TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    num_terms  INTEGER NOT NULL,
    terms      BLOB NOT NULL,        -- packed StoredTerm records, see pack_terms()
    sha256     TEXT,                 -- plain hex digest from the metadata extension, if any
    shard_hash TEXT NOT NULL REFERENCES shards(hash),
    created    REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS xorb_refs (  -- xorbs some stored shard lists or uses in a term
    xorb_hash  TEXT PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS file_repos (  -- the repositories a file is registered in
    file       TEXT NOT NULL REFERENCES files(hash),
    repo       TEXT NOT NULL,        -- auth.repo_key() of the write token that registered it
    PRIMARY KEY (file, repo)
) WITHOUT ROWID;
"""

_TERM = struct.Struct("<32sIII")


class StoredTerm(NamedTuple):
    xorb_raw: bytes  # raw 32-byte xorb hash
    chunk_start: int
    chunk_end: int
    unpacked_bytes: int


def pack_terms(terms: Iterable[StoredTerm]) -> bytes:
    return b"".join(_TERM.pack(*t) for t in terms)


def unpack_terms(blob: bytes) -> list[StoredTerm]:
    return [StoredTerm(*t) for t in _TERM.iter_unpack(blob)]


@dataclass(frozen=True)
class XorbRow:
    hash: str
    num_chunks: int
    records_len: int
    stored_len: int
    unpacked_len: int


@dataclass(frozen=True)
class FileRow:
    hash: str
    size: int
    terms: list[StoredTerm]
    sha256: str | None


@dataclass(frozen=True)
class ShardRow:
    hash: str
    size: int
    num_files: int
    num_xorbs: int


class Index:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        had_refs = bool(
            self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='xorb_refs'"
            ).fetchall()
        )
        self._db.executescript(SCHEMA)
        if not had_refs:
            # A data dir from before xorb_refs: count every stored xorb as referenced (never
            # collect what an older server accepted; only new orphans age out).
            self._db.execute("INSERT OR IGNORE INTO xorb_refs SELECT hash FROM xorbs")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One explicit write transaction (the connection is in autocommit mode otherwise).
        The Hub's tables (hub/db.py) are written through it too: one writer per process."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: Sequence[object] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # ------------------------------------------------------------------- xorbs
    def xorb(self, hex_hash: str) -> XorbRow | None:
        rows = self._query(
            "SELECT hash, num_chunks, records_len, stored_len, unpacked_len"
            " FROM xorbs WHERE hash=?",
            (hex_hash,),
        )
        return XorbRow(*rows[0]) if rows else None

    def insert_xorb(self, row: XorbRow, dedup_chunks: Sequence[tuple[str, int]]) -> bool:
        """Commit a xorb (its file must already be durable). False if it already existed."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO xorbs VALUES (?,?,?,?,?,?)",
                (
                    row.hash,
                    row.num_chunks,
                    row.records_len,
                    row.stored_len,
                    row.unpacked_len,
                    time.time(),
                ),
            )
            if cur.rowcount == 0:
                return False
            db.executemany(
                "INSERT OR IGNORE INTO dedup_chunks VALUES (?,?,?)",
                [(c, row.hash, i) for c, i in dedup_chunks],
            )
            return True

    def orphan_xorbs(self, accepted_before: float) -> list[str]:
        """Xorbs accepted before that time that no stored shard references."""
        rows = self._query(
            "SELECT hash FROM xorbs WHERE created < ?"
            " AND hash NOT IN (SELECT xorb_hash FROM xorb_refs)",
            (accepted_before,),
        )
        return [r[0] for r in rows]

    def remove_orphan_xorbs(self, hex_hashes: Sequence[str]) -> list[str]:
        """Delete the rows of these xorbs if still unreferenced; returns those deleted."""
        removed = []
        with self.transaction() as db:
            for h in hex_hashes:
                if db.execute("SELECT 1 FROM xorb_refs WHERE xorb_hash=?", (h,)).fetchall():
                    continue  # a shard referenced it meanwhile
                db.execute("DELETE FROM dedup_chunks WHERE xorb_hash=?", (h,))
                if db.execute("DELETE FROM xorbs WHERE hash=?", (h,)).rowcount:
                    removed.append(h)
        return removed

    # ------------------------------------------------------------------- shards and files
    def has_shard(self, hex_hash: str) -> bool:
        return bool(self._query("SELECT 1 FROM shards WHERE hash=?", (hex_hash,)))

    def insert_shard(
        self,
        shard: ShardRow,
        files: Sequence[FileRow],
        dedup_chunks: Sequence[tuple[str, str, int]],
        repo: str,
        xorb_refs: Sequence[str] = (),
    ) -> tuple[bool, int]:
        """Commit a shard, its files (registered in ``repo``) and its dedup entries in one
        transaction.

        Returns (shard was new, number of newly registered files). A file already known keeps
        its first reconstruction: any valid term list of the same content is equivalent.
        """
        now = time.time()
        with self.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO shards VALUES (?,?,?,?,?)",
                (shard.hash, shard.size, shard.num_files, shard.num_xorbs, now),
            )
            if cur.rowcount == 0:
                return False, 0
            new_files = 0
            for f in files:
                cur = db.execute(
                    "INSERT OR IGNORE INTO files VALUES (?,?,?,?,?,?,?)",
                    (f.hash, f.size, len(f.terms), pack_terms(f.terms), f.sha256, shard.hash, now),
                )
                new_files += cur.rowcount
                if cur.rowcount == 0 and f.sha256:  # known file, now with its sha256 (Hub)
                    db.execute(
                        "UPDATE files SET sha256=? WHERE hash=? AND sha256 IS NULL",
                        (f.sha256, f.hash),
                    )
            db.executemany(
                "INSERT OR IGNORE INTO file_repos VALUES (?,?)", [(f.hash, repo) for f in files]
            )
            db.executemany("INSERT OR IGNORE INTO dedup_chunks VALUES (?,?,?)", dedup_chunks)
            db.executemany("INSERT OR IGNORE INTO xorb_refs VALUES (?)", [(h,) for h in xorb_refs])
            return True, new_files

    def register_files(self, hex_hashes: Sequence[str], repo: str) -> None:
        """Register already stored files in ``repo`` too (unknown hashes are skipped)."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO file_repos SELECT hash, ? FROM files WHERE hash=?",
                [(repo, h) for h in hex_hashes],
            )

    def file(self, hex_hash: str, repo: str | None = None) -> FileRow | None:
        """A stored file; with ``repo``, only if it is registered in that repository."""
        if repo is None:
            sql, args = "SELECT hash, size, terms, sha256 FROM files WHERE hash=?", (hex_hash,)
        else:
            sql = (
                "SELECT hash, size, terms, sha256 FROM files JOIN file_repos ON file = hash"
                " WHERE hash=? AND repo=?"
            )
            args = (hex_hash, repo)
        rows = self._query(sql, args)
        if not rows:
            return None
        h, size, blob, sha = rows[0]
        return FileRow(h, size, unpack_terms(blob), sha)

    # ------------------------------------------------------------------- dedup
    def dedup_lookup(self, chunk_hex: str, limit: int = 4) -> list[tuple[str, int]]:
        rows = self._query(
            "SELECT xorb_hash, chunk_index FROM dedup_chunks WHERE chunk_hash=? LIMIT ?",
            (chunk_hex, limit),
        )
        return [(x, i) for x, i in rows]

    # ------------------------------------------------------------------- maintenance
    def all_hashes(self, table: str) -> set[str]:
        if table not in ("xorbs", "shards", "files"):
            raise ValueError(table)
        return {h for (h,) in self._query(f"SELECT hash FROM {table}")}

    def counts(self) -> dict[str, int]:
        out = {}
        for table in ("xorbs", "shards", "files", "dedup_chunks"):
            out[table] = self._query(f"SELECT COUNT(*) FROM {table}")[0][0]
        return out

    def integrity_problems(self) -> list[str]:
        """Foreign-key violations and SQLite's own integrity check (empty list = healthy)."""
        problems = [f"fk: {row}" for row in self._query("PRAGMA foreign_key_check")]
        check = self._query("PRAGMA quick_check")
        if check != [("ok",)]:
            problems += [f"integrity: {row}" for row in check]
        return problems
