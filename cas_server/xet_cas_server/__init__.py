"""Local Xet CAS server (CPython only): the backend of the demo page and of the e2e tests.

Entry points: ``python -m xet_cas_server`` (see :mod:`.cli`) and :func:`create_app`.
"""

from .app import create_app
from .config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
