"""The Hugging Face Hub on top of Xet sessions: repositories, commits, resolve (layer 4, above
:mod:`xet_pyodide.session`). Works in CPython and Pyodide; see :class:`HubClient` and
``docs/hub.md``.
"""

from __future__ import annotations

from ..errors import XetHubAuthError, XetHubConflictError, XetHubError, XetHubNotFoundError
from .api import FileInfo, HubApi
from .client import DEFAULT_ENDPOINT, HubClient, HubTokenRefresher
from .payloads import CommitInfo
from .repo import RepoId, parse_repo
from .sources import BytesSource, LocalFileSource, UploadSource
from .upload import CommitOptions, HubFileResult, HubUpload, HubUploadResult

__all__ = [
    "DEFAULT_ENDPOINT",
    "BytesSource",
    "CommitInfo",
    "CommitOptions",
    "FileInfo",
    "HubApi",
    "HubClient",
    "HubFileResult",
    "HubTokenRefresher",
    "HubUpload",
    "HubUploadResult",
    "LocalFileSource",
    "RepoId",
    "UploadSource",
    "XetHubAuthError",
    "XetHubConflictError",
    "XetHubError",
    "XetHubNotFoundError",
    "parse_repo",
]
