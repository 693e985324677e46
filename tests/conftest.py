"""Shared pytest configuration: fixture plugins for the three runtimes and the CAS server."""

pytest_plugins = [
    "tests.plugins.runtimes",
    "tests.plugins.pyodide",
    "tests.plugins.cas_server",
    "tests.plugins.download_corpus",
]
