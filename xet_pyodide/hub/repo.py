"""Naming a Hub repository: ``RepoId`` and the URL paths the Hub API puts it in.

A repository is given as the Hub's clients accept it: ``"namespace/name"`` (a model),
``"datasets/namespace/name"`` / ``"spaces/namespace/name"`` (as in @huggingface/hub), a
mapping or object with ``type`` and ``name`` (``{"type": "dataset", "name": "ns/name"}``), or
a :class:`RepoId`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

REPO_TYPES = ("model", "dataset", "space")
#: ``namespace/name`` as the Hub allows it (letters, digits, ``-``, ``_``, ``.``; no ``--``
#: or ``..`` runs, no leading/trailing ``-`` or ``.``); checked here so that a typo fails
#: before any request with a clear message.
_PART = r"(?!.*(?:--|\.\.))[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_NAME = re.compile(rf"^{_PART}/{_PART}$")
_PREFIXES = {"models/": "model", "datasets/": "dataset", "spaces/": "space"}


@dataclass(frozen=True, slots=True)
class RepoId:
    """A Hub repository: ``type`` (``model`` | ``dataset`` | ``space``) and ``name``
    (``namespace/name``)."""

    name: str
    type: str = "model"

    def __post_init__(self) -> None:
        if self.type not in REPO_TYPES:
            raise ValueError(f"repository type must be one of {REPO_TYPES}, not {self.type!r}")
        if not _NAME.match(self.name):
            raise ValueError(f"{self.name!r} is not a repository name of the form 'namespace/name'")

    @property
    def api_path(self) -> str:
        """``/api/{type}s/{namespace}/{name}``: where the JSON API lives."""
        return f"/api/{self.type}s/{self.name}"

    @property
    def web_path(self) -> str:
        """``/{name}``, ``/datasets/{name}`` or ``/spaces/{name}``: resolve and commit pages."""
        return "/" + ("" if self.type == "model" else f"{self.type}s/") + self.name

    def __str__(self) -> str:
        return self.name if self.type == "model" else f"{self.type}s/{self.name}"


def parse_repo(value: Any, repo_type: str | None = None) -> RepoId:
    """A :class:`RepoId` from any accepted form (see module docstring); ``repo_type`` applies
    to a plain ``"namespace/name"`` string."""
    if isinstance(value, RepoId):
        return value
    if isinstance(value, str):
        for prefix, kind in _PREFIXES.items():
            if value.startswith(prefix) and value.count("/") == 2:
                if repo_type not in (None, kind):
                    raise ValueError(f"{value!r} is a {kind}, not a {repo_type}")
                return RepoId(value[len(prefix) :], kind)
        return RepoId(value, repo_type or "model")
    if isinstance(value, Mapping):
        name, kind = value.get("name"), value.get("type")
    else:
        name, kind = getattr(value, "name", None), getattr(value, "type", None)
    if not isinstance(name, str):
        raise TypeError(
            f"a repository is 'namespace/name' or {{type, name}}, got {type(value).__name__}"
        )
    return RepoId(name, str(kind) if kind else repo_type or "model")


def quote_revision(revision: str) -> str:
    """A revision as one path segment (``refs/pr/1`` → ``refs%2Fpr%2F1``), as both Hub
    clients send it."""
    return quote(revision, safe="")


def quote_path(path: str) -> str:
    """A file path in a URL: each segment percent-encoded, the slashes kept."""
    return quote(path, safe="/")


__all__ = ["REPO_TYPES", "RepoId", "parse_repo", "quote_path", "quote_revision"]
