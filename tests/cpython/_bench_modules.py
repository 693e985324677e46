"""Loading a bench/ script as a module for the tests of its pure parts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def load_bench(name: str) -> ModuleType:
    """``bench/<name>.py`` as a fresh module named ``_bench_<name>``. bench/ is first on
    ``sys.path`` while it loads (its scripts import their siblings), and ``sys.path`` is
    restored afterwards whatever the script added (browser.py and peers.py put the repository,
    cas_server and bench first): no bench module may shadow another for later tests."""
    saved = list(sys.path)
    sys.path.insert(0, str(REPO / "bench"))
    try:
        spec = importlib.util.spec_from_file_location(
            f"_bench_{name.lstrip('_')}", REPO / "bench" / f"{name}.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module
