"""Running ``python -m xet_pyodide ...`` as a real subprocess (the CLI tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``python -m xet_pyodide *args`` with this checkout on ``PYTHONPATH`` (text output)."""
    return subprocess.run(
        [sys.executable, "-m", "xet_pyodide", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )
