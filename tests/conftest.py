"""Shared pytest configuration: fixture plugins for the three runtimes and the CAS server."""

import os

# Upload resume (xet_pyodide/session/resume.py) is on by default and keyed by endpoint: tests
# that share a server must not resume from each other's interrupted uploads, nor write into
# the user's cache. The resume tests pass their own directories.
os.environ["XET_PYODIDE_RESUME_DIR"] = "off"

pytest_plugins = [
    "tests.plugins.runtimes",
    "tests.plugins.pyodide",
    "tests.plugins.cas_server",
    "tests.plugins.download_corpus",
]
