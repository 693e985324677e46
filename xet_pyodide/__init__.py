"""xet_pyodide: the Xet storage protocol in Python, for the browser (Pyodide) and CPython."""

from ._version import __version__
from .core.filehash import FileHashInfo, hash_files
from .core.hashes import MerkleHash
from .session import (
    COMPUTE,
    SKIP,
    CommitResult,
    FileResult,
    SessionConfig,
    UploadMetrics,
    XetSession,
)

__all__ = ["FileHashInfo", "MerkleHash", "__version__", "hash_files"]

__all__ += [
    "COMPUTE",
    "SKIP",
    "CommitResult",
    "FileResult",
    "SessionConfig",
    "UploadMetrics",
    "XetSession",
]
