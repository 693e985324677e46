"""Bearer access tokens minted and checked by this server.

Format: ``xcas1.<b64url(JSON claims)>.<b64url(HMAC-SHA256(token key, "xcas1." + claims))>``.
Claims: ``scope`` ("read" | "write"), ``exp`` (unix seconds), ``repo`` (the repository the
token is for, :func:`repo_key` form: ``models/org/name``), ``rev`` (the revision asked for,
recorded only: CAS content is not versioned) and ``jti`` (random: every token is distinct).
Write tokens also grant read (like the Hub's). What a token grants, endpoint by endpoint, is
in ``cas_server/README.md`` ("What a token grants"); the repository is enforced where the
server knows one: files (registered in the repository of the write token that uploaded their
shard) and upload grants. The dev secret itself is *not* a CAS token: it only opens the token
endpoint and the admin API.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import Forbidden, Unauthorized
from .signing import b64url, b64url_decode, same_secret

PREFIX = "xcas1."


class Scope(enum.StrEnum):
    READ = "read"
    WRITE = "write"

    def allows(self, needed: Scope) -> bool:
        return self is Scope.WRITE or needed is Scope.READ


#: Repository types of the Hub's token routes (``/api/{type}s/{repo}/xet-…-token``).
REPO_TYPES = ("model", "dataset", "space", "bucket")


def repo_key(repo_type: str, repo_id: str) -> str:
    """The repository claim of a token: ``"{type}s/{id}"``, e.g. ``models/org/name``
    (``repo_type`` singular or plural)."""
    kind = repo_type.removesuffix("s")
    if kind not in REPO_TYPES:
        raise ValueError(f"unknown repository type {repo_type!r}")
    if not repo_id or repo_id.startswith("/") or repo_id.endswith("/"):
        raise ValueError(f"bad repository id {repo_id!r}")
    return f"{kind}s/{repo_id}"


@dataclass(frozen=True)
class TokenClaims:
    scope: Scope
    exp: int
    #: :func:`repo_key` of the repository ("" for none: such a token reads no file)
    repo: str
    revision: str
    #: Identifies this very token (its signature): upload-grant budgets are per token.
    token_id: str


def bearer_token(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if not value:
        return None
    kind, _, token = value.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class TokenAuthority:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sig(self, body: str) -> str:
        return b64url(hmac.new(self._key, (PREFIX + body).encode(), hashlib.sha256).digest())

    def mint(
        self,
        scope: Scope,
        ttl: int,
        repo: str = "",
        revision: str = "",
        now: float | None = None,
    ) -> tuple[str, int]:
        """A token for ``repo`` (:func:`repo_key` form) and its expiry (unix seconds)."""
        exp = int(now if now is not None else time.time()) + ttl
        # jti: two tokens minted alike in the same second still differ (per-token budgets)
        claims = {
            "scope": scope.value,
            "exp": exp,
            "repo": repo,
            "rev": revision,
            "jti": secrets.token_urlsafe(9),
        }
        body = b64url(json.dumps(claims).encode())
        return f"{PREFIX}{body}.{self._sig(body)}", exp

    def check(self, token: str | None, needed: Scope, now: float | None = None) -> TokenClaims:
        """Return the claims of a valid token with enough scope; raise 401/403 otherwise."""
        if token is None:
            raise Unauthorized("missing bearer token")
        if not token.startswith(PREFIX) or token.count(".") != 2:
            raise Unauthorized("malformed token")
        body, _, sig = token[len(PREFIX) :].partition(".")
        if not same_secret(sig, self._sig(body)):
            raise Unauthorized("token signature does not match")
        try:
            raw = json.loads(b64url_decode(body))
            claims = TokenClaims(
                Scope(raw["scope"]),
                int(raw["exp"]),
                str(raw.get("repo", "")),
                str(raw.get("rev", "")),
                sig,
            )
        except (ValueError, KeyError, TypeError):
            raise Unauthorized("malformed token claims") from None
        if claims.exp <= (now if now is not None else time.time()):
            raise Unauthorized("token has expired")
        if not claims.scope.allows(needed):
            raise Forbidden(f"token scope {claims.scope.value!r} does not allow {needed.value}")
        return claims
