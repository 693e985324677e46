"""The Hub's operations over its tables and the CAS store, shared by the route modules:
who may see which repository, revision resolution, commits (with the sha256 → Xet file
mapping of ``lfsFile`` lines), signed LFS upload URLs. Xet tokens for a repository come from
the CAS itself (``CasState.issue_token``).
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import time
from urllib.parse import quote, urlencode

from ..signing import b64url, same_secret
from ..state import CasState
from . import commits
from .auth import HubAuth, Principal
from .db import CommitRow, HubDB, NewBlob, RepoRow, commit_in_repo, next_pr_number, ref_in
from .early import EarlyProofs
from .errors import Conflict, RevisionNotFound, Unprocessable
from .gitobj import commit_oid, pointer_oid, tree_digest
from .names import COMMIT_OID, RepoId, check_branch, repo_of_claim

#: A commit's answer: the commit, and the PR number when it opened a pull request.
CommitResult = tuple[CommitRow, int | None]


class Hub:
    def __init__(self, cas: CasState) -> None:
        self.cas = cas
        self.db = HubDB(cas.store.index, cas.config.data_dir / "index.sqlite3")
        self.auth = HubAuth(self.db, cas.keys.token, cas.config.dev_secret)
        self._lfs_key = hmac.new(cas.keys.grant_url, b"hub-lfs-put", hashlib.sha256).digest()
        #: The sha256 proofs, hashed as the xorbs arrive where possible (early.py).
        self.proofs = EarlyProofs(
            cas.store,
            cas.stats,
            self._is_repo,
            needed=lambda sha256, size: self.db.blob(pointer_oid(sha256, size)) is None,
        )
        cas.upload_observer = self.proofs

    def close(self) -> None:
        self.proofs.close()
        self.db.close()

    # ------------------------------------------------------------------ repositories
    def create_repo(self, repo: RepoId, private: bool, author: str) -> RepoRow | None:
        def first(now: float) -> CommitRow:
            title = "initial commit"
            oid = commit_oid(tree_digest([]), None, author, now, title, "")
            return CommitRow(oid, None, title, "", author, now)

        return self.db.create_repo(repo, private, first)

    def _is_repo(self, claim: str) -> bool:
        """Whether a token's repository claim (``models/ns/name``) is one of the Hub's."""
        try:
            return self.db.repo(repo_of_claim(claim)) is not None
        except Exception:
            return False

    def readable(self, who: Principal, repo: RepoId) -> RepoRow:
        return self.auth.readable(who, self.db.repo(repo), repo.id)

    def writable(self, who: Principal, repo: RepoId) -> RepoRow:
        return self.auth.writable(who, self.db.repo(repo), repo.id)

    def resolve(self, repo: RepoRow, revision: str) -> str:
        """Commit id of a branch, a ``refs/pr/N`` ref, or a full commit id of this repository."""
        oid = self.db.ref(repo, revision)
        if oid is None and COMMIT_OID.match(revision):
            row = self.db.commit_row(repo, revision)
            oid = row.oid if row else None
        if oid is None:
            raise RevisionNotFound(f"Invalid rev id: {revision}")
        return oid

    # ------------------------------------------------------------------ commits
    def lfs_blob(self, sha256: str, size: int | None, path: str) -> NewBlob | str:
        """The blob of a large file named by sha256: an existing blob's oid, or a new blob once
        a registered Xet file is *proven* to have this sha256 (reconstructed and hashed: a
        shard's metadata is only the uploader's claim). Slow for large unproven files; runs in
        a worker thread. Raises 422 naming ``path`` when no stored file has this content."""
        if size is None:
            known = self.db.blob_by_sha256(sha256)
            if known is None:
                raise Unprocessable(f"{path}: no uploaded file has sha256 {sha256}")
            size = known.size
        oid = pointer_oid(sha256, size)
        if self.db.blob(oid) is not None:
            return oid
        for xet_hash in self.db.xet_files_with_sha256(sha256, size):
            if self.proofs.sha256_of(xet_hash) == sha256:
                return NewBlob(oid, size, sha256=sha256, xet_hash=xet_hash)
        raise Unprocessable(
            f"{path}: no uploaded file has sha256 {sha256} and size {size};"
            " upload its content (Xet or LFS) before committing"
        )

    def commit(
        self,
        repo: RepoRow,
        branch: str,
        header: commits.Header,
        ops: list[commits.Operation],
        lfs: dict[str, NewBlob | str],
        author: str,
        create_pr: bool = False,
    ) -> CommitResult:
        """Atomically apply ``ops`` on ``branch`` (or on a new ``refs/pr/N`` with
        ``create_pr``). ``lfs`` maps every ``AddLfs`` path to its blob (see :meth:`lfs_blob`).
        Raises 404 for an unknown branch, 409 when ``parentCommit`` is not the branch head."""
        check_branch(branch)
        pr_number: int | None = None

        def base(db: sqlite3.Connection) -> tuple[str, str]:
            nonlocal pr_number
            head = ref_in(db, repo, branch)
            if head is None:
                raise RevisionNotFound(f"Invalid rev id: {branch}")
            parent = header.parent_commit
            if create_pr:
                if parent is not None and not commit_in_repo(db, repo, parent):
                    raise RevisionNotFound(f"parentCommit {parent} is not in this repository")
                pr_number = next_pr_number(db, repo)
                return parent or head, f"refs/pr/{pr_number}"
            if parent is not None and parent != head:
                raise Conflict(
                    f"A commit has happened since. Please refresh and try again: {branch} is at"
                    f" {head}, not at the given parentCommit {parent}"
                )
            return head, branch

        new_blobs = [b for b in lfs.values() if isinstance(b, NewBlob)]
        new_blobs += [
            NewBlob(op.oid, len(op.content), content=op.content)
            for op in ops
            if isinstance(op, commits.AddInline)
        ]
        oids = {path: b.oid if isinstance(b, NewBlob) else b for path, b in lfs.items()}

        def build(_parent: str, files: dict[str, str]) -> tuple[dict[str, str], list[NewBlob]]:
            return commits.apply(files, ops, oids), new_blobs

        def make(files: dict[str, str], parent: str, now: float) -> CommitRow:
            oid = commit_oid(
                tree_digest(files.items()), parent, author, now, header.summary, header.description
            )
            return CommitRow(oid, parent, header.summary, header.description, author, now)

        row = self.db.commit(
            repo,
            base,
            build,
            make,
            self.cas.faults.commit_hook("hub_commit"),
        )
        return row, pr_number

    # ------------------------------------------------------------------ LFS basic uploads
    def lfs_put_url(self, base: str, repo: RepoId, sha256: str, size: int) -> str:
        """A self-authorizing upload URL (the LFS ``basic`` transfer PUTs without a token)."""
        expires = int(time.time()) + self.cas.config.grant_ttl
        path = f"/_hub/lfs/{repo.type}s/{repo.id}/{sha256}"
        query = {"size": size, "expires": expires, "sig": self._lfs_sig(path, size, expires)}
        return f"{base}{quote(path)}?{urlencode(query)}"

    def lfs_put_check(self, path: str, size: str, expires: str, sig: str) -> tuple[int, bool]:
        """(signed size, still valid) of an upload URL; raises ValueError if it was not ours."""
        if not same_secret(sig, self._lfs_sig(path, int(size), int(expires))):
            raise ValueError("signature does not match")
        return int(size), int(expires) >= time.time()

    def _lfs_sig(self, path: str, size: int, expires: int) -> str:
        msg = f"PUT\n{path}\n{size}\n{expires}".encode()
        return b64url(hmac.new(self._lfs_key, msg, hashlib.sha256).digest())
