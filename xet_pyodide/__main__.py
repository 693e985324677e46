"""``python -m xet_pyodide``: see :mod:`xet_pyodide.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
