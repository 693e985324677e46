"""The transport for the running interpreter: browser ``fetch`` under Pyodide, httpx elsewhere.

Kept out of :mod:`.transport` (the interface both implementations build on), so that the
choice imports the implementations and no implementation imports back what chose it.
"""

from __future__ import annotations

import sys

from .transport import Transport


def default_transport() -> Transport:
    """The transport for this interpreter: browser ``fetch`` under Pyodide, httpx elsewhere."""
    if sys.platform == "emscripten":
        from ._pyfetch import PyfetchTransport

        return PyfetchTransport()
    from ._httpx import HttpxTransport

    return HttpxTransport()


__all__ = ["default_transport"]
