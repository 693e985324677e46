"""Choices that depend on the running interpreter: the transport (browser ``fetch`` under
Pyodide, httpx elsewhere) and the default upload resume store (a directory in CPython, none
under Pyodide, whose file system lives in memory).

Kept out of :mod:`.transport` (the interface both implementations build on), so that the
choice imports the implementations and no implementation imports back what chose it.
"""

from __future__ import annotations

import sys

from .resume_dir import DirectoryResumeBackend, default_resume_dir
from .transport import Transport


def default_transport() -> Transport:
    """The transport for this interpreter: browser ``fetch`` under Pyodide, httpx elsewhere."""
    if sys.platform == "emscripten":
        from ._pyfetch import PyfetchTransport

        return PyfetchTransport()
    from ._httpx import HttpxTransport

    return HttpxTransport()


def default_resume_backend() -> DirectoryResumeBackend | None:
    """A session's default resume store: :func:`~.resume_dir.default_resume_dir` in CPython;
    none under Pyodide (a page passes its browser store, see ``web/xet_resume.mjs``)."""
    if sys.platform == "emscripten":
        return None
    path = default_resume_dir()
    return DirectoryResumeBackend(path) if path is not None else None


__all__ = ["default_resume_backend", "default_transport"]
