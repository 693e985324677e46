"""xet_pyodide: the Xet storage protocol in Python, for the browser (Pyodide) and CPython."""

__version__ = "0.1.0"
