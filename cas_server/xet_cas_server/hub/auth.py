"""Who is calling the Hub API and what they may do.

* No ``Authorization`` header: anonymous — reads public repositories.
* ``Bearer <dev secret>``: the admin — reads and writes every repository, creates repositories
  in any namespace, mints tokens. So ``HF_TOKEN=<dev secret>`` works with no other setup.
* ``Bearer hf_…``: a Hub token minted by the admin (``POST /api/_admin/tokens``) for a user,
  ``read`` or ``write``. A read token reads public repositories and its user's private ones; a
  write token also creates repositories in its user's namespace and writes to them.

Tokens are stored as ``HMAC-SHA256(server token key, token)``: the database never holds a usable
token, and restarting with another dev secret revokes them all (like the CAS tokens).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from ..auth import bearer_token
from .db import HubDB, RepoRow
from .errors import BadHubRequest, HubUnauthorized, NoWriteAccess, RepoNotFound

ROLES = ("read", "write")
ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    user: str | None  # None = anonymous
    role: str  # "read", "write" or "admin"

    @property
    def anonymous(self) -> bool:
        return self.user is None

    def may_read(self, repo: RepoRow) -> bool:
        return not repo.private or self.role == ADMIN or self.user == repo.repo.namespace

    def may_write_namespace(self, namespace: str) -> bool:
        return self.role == ADMIN or (self.role == "write" and self.user == namespace)


ANONYMOUS = Principal(None, "read")


class HubAuth:
    def __init__(self, db: HubDB, token_key: bytes, dev_secret: str) -> None:
        self._db = db
        self._key = hmac.new(token_key, b"hub-tokens", hashlib.sha256).digest()
        self._dev_secret = dev_secret

    def _hash(self, token: str) -> str:
        return hmac.new(self._key, token.encode("utf-8", "surrogateescape"), "sha256").hexdigest()

    def mint(self, user: str, role: str, name: str = "") -> str:
        if role not in ROLES:
            raise BadHubRequest(f"role must be one of {ROLES}")
        token = "hf_" + secrets.token_hex(17)
        self._db.add_token(self._hash(token), user, role, name or f"{user}-{role}")
        return token

    def principal(self, headers: Mapping[str, str]) -> Principal:
        """The caller; raises 401 for a token that is sent but not valid."""
        token = bearer_token(headers)
        if token is None:
            return ANONYMOUS
        if hmac.compare_digest(token.encode("utf-8", "surrogateescape"), self._dev_secret.encode()):
            return Principal(ADMIN, ADMIN)
        row = self._db.token(self._hash(token)) if token.startswith("hf_") else None
        if row is None:
            raise HubUnauthorized()
        user, role, _name = row
        return Principal(user, role)

    def readable(self, who: Principal, repo: RepoRow | None, repo_name: str) -> RepoRow:
        """The repository if ``who`` may read it; otherwise the Hub's not-found answer."""
        if repo is None or not who.may_read(repo):
            raise RepoNotFound(f"Repository not found: {repo_name}", anonymous=who.anonymous)
        return repo

    def writable(self, who: Principal, repo: RepoRow | None, repo_name: str) -> RepoRow:
        repo = self.readable(who, repo, repo_name)
        if who.anonymous:
            raise HubUnauthorized(f"You must be authenticated to write to {repo_name}")
        if not who.may_write_namespace(repo.repo.namespace):
            raise NoWriteAccess(
                f"You don't have the rights to write to {repo_name}"
                + (" (read token)" if who.role == "read" else "")
            )
        return repo
