"""The Hub's tables, in the CAS's SQLite file (``index.sqlite3``), and every query on them.

Same durability as the CAS index (WAL, ``synchronous=FULL``). A commit is one transaction:
blobs, the commit row, its file list and the branch move land together or not at all, so a
crash at any moment leaves every branch on a commit that is complete.

Model (see ``docs`` in cas_server/README.md, "Hub"):

* ``hub_repos`` — one row per repository (type, namespace, name, private).
* ``hub_commits`` — 40-hex id, repository, parent, title, message, author, time.
* ``hub_tree`` — the complete file list of every commit: ``(commit, path) → blob`` plus the
  last commit that changed the path. A commit copies its parent's rows and applies its
  operations: O(files) rows per commit, which keeps every read a single indexed query.
* ``hub_refs`` — branches (``main``, ``refs/pr/N``) → commit.
* ``hub_blobs`` — file contents by git blob id. Regular files keep their bytes here (they are
  small — the preupload answer sends anything large or binary to Xet — and living in the same
  transaction as the commit means a commit can never name a missing blob, with no file
  rename/fsync dance); large files are a row naming the Xet file (``files.hash``) and the
  sha256, keyed by the blob id of their LFS pointer. Such a row exists only once the server
  knows the sha256 is true (it computed it, or reconstructed the Xet file and checked).
* ``hub_tokens`` — Hub access tokens, stored as a keyed hash (never the token itself).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..index import Index
from .names import RepoId

SCHEMA = """
CREATE TABLE IF NOT EXISTS hub_repos (
    id        INTEGER PRIMARY KEY,
    type      TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    private   INTEGER NOT NULL,
    created   REAL NOT NULL,
    UNIQUE (type, namespace, name)
);
CREATE TABLE IF NOT EXISTS hub_commits (
    oid     TEXT PRIMARY KEY,
    repo    INTEGER NOT NULL REFERENCES hub_repos(id),
    parent  TEXT REFERENCES hub_commits(oid),
    title   TEXT NOT NULL,
    message TEXT NOT NULL,
    author  TEXT NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hub_blobs (
    oid      TEXT PRIMARY KEY,             -- git blob id (of the content, or of the LFS pointer)
    size     INTEGER NOT NULL,             -- size of the file's content
    sha256   TEXT,                         -- large files: sha256 of the content (plain hex)
    xet_hash TEXT REFERENCES files(hash),  -- large files: the Xet file
    content  BLOB                          -- regular files: the bytes
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hub_tree (
    commit_oid  TEXT NOT NULL REFERENCES hub_commits(oid),
    path        TEXT NOT NULL,
    blob        TEXT NOT NULL REFERENCES hub_blobs(oid),
    last_commit TEXT NOT NULL REFERENCES hub_commits(oid),
    PRIMARY KEY (commit_oid, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hub_refs (
    repo       INTEGER NOT NULL REFERENCES hub_repos(id),
    name       TEXT NOT NULL,
    commit_oid TEXT NOT NULL REFERENCES hub_commits(oid),
    PRIMARY KEY (repo, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hub_tokens (
    hash    TEXT PRIMARY KEY,
    user    TEXT NOT NULL,
    role    TEXT NOT NULL,
    name    TEXT NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_sha256 ON files(sha256);
"""


@dataclass(frozen=True)
class RepoRow:
    pk: int
    repo: RepoId
    private: bool
    created: float


@dataclass(frozen=True)
class CommitRow:
    oid: str
    parent: str | None
    title: str
    message: str
    author: str
    created: float


@dataclass(frozen=True)
class Blob:
    oid: str
    size: int
    sha256: str | None
    xet_hash: str | None

    @property
    def is_lfs(self) -> bool:
        return self.xet_hash is not None


@dataclass(frozen=True)
class TreeEntry:
    path: str
    blob: Blob
    last_commit: str


@dataclass(frozen=True)
class NewBlob:
    """A blob a commit adds: regular (``content``) or large (``xet_hash`` + ``sha256``)."""

    oid: str
    size: int
    content: bytes | None = None
    sha256: str | None = None
    xet_hash: str | None = None


#: What a commit's builder returns: the new file list ``path → blob oid`` and the blobs it adds.
CommitPlan = tuple[dict[str, str], list[NewBlob]]


class HubDB:
    """Writes go through the CAS index's connection and lock (one writer per process, so a
    commit never meets SQLITE_BUSY from the CAS); reads use one connection per thread: in WAL
    mode they never wait for a commit in progress, so the event loop's quick lookups are not
    held up by a large commit."""

    def __init__(self, index: Index, path: Path) -> None:
        self._path = path
        self._transaction = index.transaction
        with self._transaction() as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._readers: list[sqlite3.Connection] = []

    def close(self) -> None:
        with self._lock:
            for conn in self._readers:
                conn.close()

    def _query(self, sql: str, args: Sequence[object] = ()) -> list[tuple]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self._path, check_same_thread=False, isolation_level=None, timeout=60
            )
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn.execute(sql, args).fetchall()

    # ------------------------------------------------------------------ tokens
    def add_token(self, key_hash: str, user: str, role: str, name: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO hub_tokens VALUES (?,?,?,?,?)",
                (key_hash, user, role, name, time.time()),
            )

    def token(self, key_hash: str) -> tuple[str, str, str] | None:
        rows = self._query("SELECT user, role, name FROM hub_tokens WHERE hash=?", (key_hash,))
        return rows[0] if rows else None

    # ------------------------------------------------------------------ repositories
    def repo(self, repo: RepoId) -> RepoRow | None:
        rows = self._query(
            "SELECT id, private, created FROM hub_repos WHERE type=? AND namespace=? AND name=?",
            (repo.type, repo.namespace, repo.name),
        )
        return RepoRow(rows[0][0], repo, bool(rows[0][1]), rows[0][2]) if rows else None

    def create_repo(
        self, repo: RepoId, private: bool, first_commit: Callable[[float], CommitRow]
    ) -> RepoRow | None:
        """Create the repository with its first (empty) commit on ``main``; None if it exists."""
        now = time.time()
        with self._transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO hub_repos (type, namespace, name, private, created)"
                " VALUES (?,?,?,?,?)",
                (repo.type, repo.namespace, repo.name, int(private), now),
            )
            if cur.rowcount == 0:
                return None
            pk = cur.lastrowid
            assert pk is not None
            commit = first_commit(now)
            _insert_commit(db, pk, commit)
            db.execute("INSERT INTO hub_refs VALUES (?,?,?)", (pk, "main", commit.oid))
        return RepoRow(pk, repo, private, now)

    # ------------------------------------------------------------------ refs and commits
    def ref(self, repo: RepoRow, name: str) -> str | None:
        rows = self._query(
            "SELECT commit_oid FROM hub_refs WHERE repo=? AND name=?", (repo.pk, name)
        )
        return rows[0][0] if rows else None

    def refs(self, repo: RepoRow) -> list[tuple[str, str]]:
        return [
            (name, oid)
            for name, oid in self._query(
                "SELECT name, commit_oid FROM hub_refs WHERE repo=? ORDER BY name", (repo.pk,)
            )
        ]

    def create_branch(self, repo: RepoRow, name: str, commit_oid: str) -> bool:
        with self._transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO hub_refs VALUES (?,?,?)", (repo.pk, name, commit_oid)
            )
            return cur.rowcount == 1

    def delete_branch(self, repo: RepoRow, name: str) -> bool:
        with self._transaction() as db:
            cur = db.execute("DELETE FROM hub_refs WHERE repo=? AND name=?", (repo.pk, name))
            return cur.rowcount == 1

    def commit_row(self, repo: RepoRow, oid: str) -> CommitRow | None:
        rows = self._query(
            "SELECT oid, parent, title, message, author, created FROM hub_commits"
            " WHERE oid=? AND repo=?",
            (oid, repo.pk),
        )
        return CommitRow(*rows[0]) if rows else None

    def history(self, head: str, offset: int, limit: int) -> list[CommitRow]:
        """Commits reachable from ``head`` through parents, newest first."""
        rows = self._query(
            "WITH RECURSIVE chain(oid, depth) AS ("
            "  SELECT ?, 0 UNION ALL"
            "  SELECT c.parent, chain.depth + 1 FROM hub_commits c JOIN chain ON c.oid = chain.oid"
            "  WHERE c.parent IS NOT NULL)"
            " SELECT c.oid, c.parent, c.title, c.message, c.author, c.created"
            " FROM chain JOIN hub_commits c ON c.oid = chain.oid"
            " ORDER BY chain.depth LIMIT ? OFFSET ?",
            (head, limit, offset),
        )
        return [CommitRow(*r) for r in rows]

    # ------------------------------------------------------------------ trees and blobs
    def tree(self, commit_oid: str, prefix: str = "") -> list[TreeEntry]:
        """Files of a commit (all, or those at/under ``prefix``), sorted by path."""
        sql = (
            "SELECT t.path, b.oid, b.size, b.sha256, b.xet_hash, t.last_commit"
            " FROM hub_tree t JOIN hub_blobs b ON b.oid = t.blob WHERE t.commit_oid=?"
        )
        args: list[object] = [commit_oid]
        if prefix:
            sql += " AND (t.path = ? OR substr(t.path, 1, ?) = ?)"
            args += [prefix, len(prefix) + 1, prefix + "/"]
        rows = self._query(sql + " ORDER BY t.path", args)
        return [TreeEntry(p, Blob(o, s, sha, x), last) for p, o, s, sha, x, last in rows]

    def entry(self, commit_oid: str, path: str) -> TreeEntry | None:
        rows = self._query(
            "SELECT b.oid, b.size, b.sha256, b.xet_hash, t.last_commit FROM hub_tree t"
            " JOIN hub_blobs b ON b.oid = t.blob WHERE t.commit_oid=? AND t.path=?",
            (commit_oid, path),
        )
        if not rows:
            return None
        o, s, sha, x, last = rows[0]
        return TreeEntry(path, Blob(o, s, sha, x), last)

    def blob(self, oid: str) -> Blob | None:
        rows = self._query("SELECT oid, size, sha256, xet_hash FROM hub_blobs WHERE oid=?", (oid,))
        return Blob(*rows[0]) if rows else None

    def content(self, oid: str) -> bytes:
        rows = self._query("SELECT content FROM hub_blobs WHERE oid=?", (oid,))
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else b""

    def blob_by_sha256(self, sha256: str) -> Blob | None:
        rows = self._query(
            "SELECT oid, size, sha256, xet_hash FROM hub_blobs WHERE sha256=? LIMIT 1", (sha256,)
        )
        return Blob(*rows[0]) if rows else None

    def add_blob(self, blob: NewBlob) -> None:
        with self._transaction() as db:
            _insert_blobs(db, [blob])

    def xet_files_with_sha256(self, sha256: str, size: int) -> list[str]:
        """Xet files whose shard metadata claims this sha256 and size (claims, not yet proof)."""
        return [
            h
            for (h,) in self._query(
                "SELECT hash FROM files WHERE sha256=? AND size=? LIMIT 8", (sha256, size)
            )
        ]

    # ------------------------------------------------------------------ the commit
    def commit(
        self,
        repo: RepoRow,
        base: Callable[[sqlite3.Connection], tuple[str, str]],
        build: Callable[[str, dict[str, str]], CommitPlan],
        make_commit: Callable[[dict[str, str], str, float], CommitRow],
        before_commit: Callable[[], None] | None = None,
    ) -> CommitRow:
        """One atomic commit.

        Inside one write transaction: ``base(db)`` names the commit to build on and the ref to
        move (it raises to refuse, e.g. a stale parent), ``build(base, files)`` turns the base's
        file list into the new one, ``make_commit(files, base, now)`` names the commit; then
        blobs, commit, file list and the branch move are written. ``before_commit`` runs last
        before COMMIT (tests widen the crash window with it).
        """
        with self._transaction() as db:
            parent, ref_name = base(db)
            current = dict(
                db.execute(
                    "SELECT path, blob FROM hub_tree WHERE commit_oid=?", (parent,)
                ).fetchall()
            )
            files, blobs = build(parent, current)
            commit = make_commit(files, parent, time.time())
            _insert_blobs(db, blobs)
            _insert_commit(db, repo.pk, commit)
            last = dict(
                db.execute(
                    "SELECT path, last_commit FROM hub_tree WHERE commit_oid=?", (parent,)
                ).fetchall()
            )
            db.executemany(
                "INSERT INTO hub_tree VALUES (?,?,?,?)",
                [
                    (commit.oid, path, oid, last[path] if current.get(path) == oid else commit.oid)
                    for path, oid in files.items()
                ],
            )
            db.execute(
                "INSERT INTO hub_refs VALUES (?,?,?) ON CONFLICT (repo, name)"
                " DO UPDATE SET commit_oid=excluded.commit_oid",
                (repo.pk, ref_name, commit.oid),
            )
            # The repository now holds these Xet files: its Xet read tokens may reconstruct
            # them (the CAS scopes files to repositories, see index.file_repos), also when
            # the file was uploaded through another repository and committed here by sha256.
            db.execute(
                "INSERT OR IGNORE INTO file_repos SELECT b.xet_hash, ? FROM hub_tree t"
                " JOIN hub_blobs b ON b.oid = t.blob"
                " WHERE t.commit_oid = ? AND b.xet_hash IS NOT NULL",
                (repo.repo.token_claim, commit.oid),
            )
            if before_commit is not None:
                before_commit()
        return commit


def ref_in(db: sqlite3.Connection, repo: RepoRow, name: str) -> str | None:
    """A branch's head, read inside a transaction."""
    row = db.execute(
        "SELECT commit_oid FROM hub_refs WHERE repo=? AND name=?", (repo.pk, name)
    ).fetchone()
    return row[0] if row else None


def next_pr_number(db: sqlite3.Connection, repo: RepoRow) -> int:
    rows = db.execute(
        "SELECT name FROM hub_refs WHERE repo=? AND name LIKE 'refs/pr/%'", (repo.pk,)
    ).fetchall()
    numbers = [int(n.rsplit("/", 1)[1]) for (n,) in rows if n.rsplit("/", 1)[1].isdigit()]
    return max(numbers, default=0) + 1


def commit_in_repo(db: sqlite3.Connection, repo: RepoRow, oid: str) -> bool:
    return (
        db.execute("SELECT 1 FROM hub_commits WHERE oid=? AND repo=?", (oid, repo.pk)).fetchone()
        is not None
    )


def _insert_commit(db: sqlite3.Connection, repo_pk: int, c: CommitRow) -> None:
    db.execute(
        "INSERT INTO hub_commits VALUES (?,?,?,?,?,?,?)",
        (c.oid, repo_pk, c.parent, c.title, c.message, c.author, c.created),
    )


def _insert_blobs(db: sqlite3.Connection, blobs: Sequence[NewBlob]) -> None:
    db.executemany(
        "INSERT OR IGNORE INTO hub_blobs VALUES (?,?,?,?,?)",
        [(b.oid, b.size, b.sha256, b.xet_hash, b.content) for b in blobs],
    )
