"""Smoke tests of the three runtimes and of the wheel itself."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from pytest_pyodide import run_in_pyodide

from tests.plugins.runtimes import REPO, ensure_wheel_fresh

DATA_KEY_HEX = "6697f5775b9550de3135cbaca597181c9de421109beb2b58b4d0b04b93adf229"
# Raw bytes of chunk_hash(b"abc") (docs/protocol.md §2.5).
ABC_CHUNK_HASH_RAW = "14f0aff7063580a845c69db7e9a99af15661f9702567495c4e28d08d69291307"


@run_in_pyodide(packages=["xet-pyodide"])
async def in_pyodide(selenium, module, func, args):
    """``tests/portable/<module>.<func>(*args)`` inside Pyodide (the ``rt`` fixture calls it)."""
    import importlib
    import inspect

    result = getattr(importlib.import_module(f"tests.portable.{module}"), func)(*args)
    return (await result) if inspect.isawaitable(result) else result


def test_runtime_environment(rt):
    env = rt.call("smoke", "environment")
    assert env["version"] == "0.1.0"
    if rt.name == "cpython":
        assert env["platform"] == sys.platform
        assert tuple(env["python"]) >= (3, 11)
    else:
        assert env["platform"] == "emscripten"
        assert env["python"] == [3, 14]


def test_kernel_blake3_known_value(rt):
    assert rt.call("smoke", "blake3_of", "abc", DATA_KEY_HEX) == ABC_CHUNK_HASH_RAW


@run_in_pyodide(packages=["xet-pyodide"])
def runtime_facts(selenium):
    import sys

    import js

    import xet_pyodide

    return [sys.platform, xet_pyodide.__version__, bool(getattr(js, "crossOriginIsolated", False))]


def test_pytest_pyodide_runtime(selenium, runtime):
    """pytest-pyodide's runtimes load our wheel from web/pyodide; its Chromium page is
    cross-origin isolated (tests/plugins/pyodide.py serves it with COOP/COEP)."""
    assert runtime_facts(selenium) == ["emscripten", "0.1.0", runtime == "chrome"]


def test_wheel_is_pure_and_carries_the_kernels():
    wheel = ensure_wheel_fresh()
    assert wheel.name.endswith("-py3-none-any.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "xet_pyodide/kernels/xet_kernels.wasm" in names
    assert not any(n.endswith((".so", ".pyd", ".dylib")) for n in names)


def test_wheel_installs_with_pip(tmp_path: Path):
    wheel = ensure_wheel_fresh()
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    # Import from the installed copy only (not the repo checkout) and hash through the kernels.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import xet_pyodide, xet_pyodide.kernels as k;"
        "assert xet_pyodide.__file__.startswith(sys.argv[1]), xet_pyodide.__file__;"
        f"print(k.get_kernels().blake3_keyed(b'abc', bytes.fromhex('{DATA_KEY_HEX}')).hex())"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code, str(target)],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.stdout.strip() == ABC_CHUNK_HASH_RAW


def test_pyodide_lock_lists_only_real_files():
    import hashlib
    import json

    ensure_wheel_fresh()
    dist = REPO / "web" / "pyodide"
    lock = json.loads((dist / "pyodide-lock.json").read_text())
    assert {"micropip", "xet-pyodide"} <= set(lock["packages"])
    for entry in lock["packages"].values():
        path = dist / entry["file_name"]
        assert path.is_file(), entry["file_name"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
