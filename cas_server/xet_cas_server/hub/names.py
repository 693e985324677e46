"""Names the Hub API deals in, checked before anything touches storage: repository types and
ids, paths inside a repository, branch names. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import BadHubRequest

#: Repository kinds and the plural used in ``/api/{kind}s/...`` paths.
REPO_TYPES = ("model", "dataset", "space")
PLURALS = {f"{t}s": t for t in REPO_TYPES}

#: A namespace or repository name: what the Hub accepts (letters, digits, ``-``, ``_``, ``.``;
#: no leading/trailing punctuation, no ``--`` or ``..``), at most 96 characters.
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
#: A branch: git's rules, simplified to what users type.
_BRANCH = re.compile(r"^[A-Za-z0-9._-][A-Za-z0-9._/-]{0,199}$")
PR_REF = re.compile(r"^refs/pr/([1-9][0-9]{0,8})$")
COMMIT_OID = re.compile(r"^[0-9a-f]{40}$")
MAX_PATH_BYTES = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value) or "--" in value or ".." in value:
        raise BadHubRequest(
            f"{what} {value!r} is not a valid name (letters, digits, '-', '_', '.')"
        )
    return value


@dataclass(frozen=True)
class RepoId:
    type: str  # model | dataset | space
    namespace: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def url_prefix(self) -> str:
        """Prefix of the repository's web paths: ``""`` for models, ``datasets/``, ``spaces/``."""
        return "" if self.type == "model" else f"{self.type}s/"

    @property
    def api_path(self) -> str:
        return f"/api/{self.type}s/{self.id}"

    @property
    def web_path(self) -> str:
        return f"/{self.url_prefix}{self.id}"

    @property
    def token_claim(self) -> str:
        """The repository claim put in Xet tokens (same shape as the token endpoint's)."""
        return f"{self.type}s/{self.id}"

    def __str__(self) -> str:
        return f"{self.type}s/{self.id}"


def repo_id(repo_type: str, namespace: str, name: str) -> RepoId:
    if repo_type not in REPO_TYPES:
        raise BadHubRequest(f"unknown repository type {repo_type!r}")
    return RepoId(repo_type, check_name(namespace, "namespace"), check_name(name, "repository"))


def repo_of_claim(claim: str) -> RepoId:
    """The repository a Xet token's claim names (the inverse of :attr:`RepoId.token_claim`,
    ``models/ns/name``); :class:`BadHubRequest` for a claim of no Hub repository (a bucket's,
    the dev secret's own names)."""
    kind, _, rest = claim.partition("/")
    namespace, _, name = rest.partition("/")
    return repo_id(PLURALS.get(kind, kind), namespace, name)


def check_path(path: object) -> str:
    """A file or folder path inside a repository. Refuses what could escape the tree or be
    read two ways: absolute paths, ``.``/``..``/empty segments, backslashes, control
    characters (NUL included), a ``.git`` segment."""
    if not isinstance(path, str) or not path:
        raise BadHubRequest("a path must be a non-empty string")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise BadHubRequest(f"path longer than {MAX_PATH_BYTES} bytes")
    if path.startswith("/"):
        raise BadHubRequest(f"path {path!r} is absolute")
    if "\\" in path:
        raise BadHubRequest(f"path {path!r} contains a backslash")
    if _CONTROL.search(path):
        raise BadHubRequest(f"path {path!r} contains a control character")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise BadHubRequest(f"path {path!r} has an empty, '.' or '..' segment")
        if segment == ".git":
            raise BadHubRequest(f"path {path!r} names a .git directory")
    return path


def check_branch(name: object) -> str:
    """A branch a commit can land on: a plain name or ``refs/pr/N``."""
    if not isinstance(name, str) or not (
        PR_REF.match(name) or (_BRANCH.match(name) and not name.startswith("refs/"))
    ):
        raise BadHubRequest(f"invalid branch name {name!r}")
    if any(s in ("", ".", "..") for s in name.split("/")) or name.endswith((".lock", "/")):
        raise BadHubRequest(f"invalid branch name {name!r}")
    return name


def parent_dirs(path: str) -> list[str]:
    """``a/b/c.txt`` → ``["a", "a/b"]``."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
