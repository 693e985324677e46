"""xet_pyodide: the Xet storage protocol in Python, for the browser (Pyodide) and CPython."""

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

__version__ = "0.1.0"

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
