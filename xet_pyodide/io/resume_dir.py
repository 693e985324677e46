"""Where upload resume journals live: a directory (CPython), or nowhere.

:class:`DirectoryResumeBackend` keeps one file per journal (``<name>.xrs``): appends are one
``write`` of whole frames on a file opened for appending, then ``fsync``; rewrites go to a
temporary file that is fsynced and renamed over the journal (POSIX ``rename`` is atomic).
:func:`default_resume_dir` names the default directory: the one named by
``XET_PYODIDE_RESUME_DIR`` (``off`` disables resuming), else ``$XDG_CACHE_HOME/xet_pyodide/
resume`` (``~/.cache/xet_pyodide/resume``). Under Pyodide, whose file system is in memory,
there is no default directory (:func:`xet_pyodide.io.runtime.default_resume_backend`; a page
uses a browser store instead).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

SUFFIX = ".xrs"
ENV_VAR = "XET_PYODIDE_RESUME_DIR"


def default_resume_dir() -> Path | None:
    """The default journal directory, or None when resuming is off by default."""
    value = os.environ.get(ENV_VAR)
    if value is not None:
        return None if value.strip().lower() in ("", "off", "0", "none") else Path(value)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "xet_pyodide" / "resume"


def _write_synced(path: Path, data: bytes, mode: int) -> None:
    """Write all of ``data`` to ``path`` (created 0600; ``mode`` is ``O_APPEND`` or
    ``O_TRUNC``), then fsync: once this returns, the bytes survive a crash."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | mode, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


class DirectoryResumeBackend:
    """Journals as files in ``path`` (created on first write, mode 0700: the journal names
    which xorbs of which endpoint a user uploaded)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _file(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad journal name {name!r}")
        return self.path / (name + SUFFIX)

    def _ensure_dir(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)

    async def read(self, name: str) -> bytes | None:
        try:
            return self._file(name).read_bytes()
        except FileNotFoundError:
            return None

    async def append(self, name: str, data: bytes) -> None:
        self._ensure_dir()
        _write_synced(self._file(name), data, os.O_APPEND)

    async def replace(self, name: str, data: bytes) -> None:
        self._ensure_dir()
        target = self._file(name)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        _write_synced(tmp, data, os.O_TRUNC)
        os.replace(tmp, target)

    async def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._file(name).unlink()

    async def sweep(self, max_age: float, now: float | None = None) -> int:
        """Delete journals (and leftover temporary files) not modified for ``max_age`` s."""
        now = time.time() if now is None else now
        removed = 0
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if not (entry.name.endswith(SUFFIX) or entry.name.endswith(".tmp")):
                continue
            try:
                if now - entry.stat().st_mtime > max_age:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


__all__ = [
    "ENV_VAR",
    "DirectoryResumeBackend",
    "default_resume_dir",
]
