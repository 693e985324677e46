"""Assemble the offline Pyodide distribution served at ``/pyodide/`` (``web/pyodide/``).

No CDN is reachable from these machines, and the npm ``pyodide`` package only ships the core
runtime. This script copies that core, adds the pure-Python wheels we need (micropip from PyPI,
cached in ``.cache/wheels``) and our own wheel from ``dist/``, and writes a ``pyodide-lock.json``
that lists exactly those files with their real sha256. Pyodide therefore never tries to fetch
anything from elsewhere: a package missing from the lock fails fast instead of reaching out.

Usage: ``python scripts/build_pyodide_dist.py [--out web/pyodide] [--wheel dist/xet_pyodide-*.whl]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NPM_PYODIDE = REPO / "node_modules" / "pyodide"
CORE_FILES = (
    "pyodide.mjs",
    "pyodide.js",
    "pyodide.asm.mjs",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide.d.ts",
    "ffi.d.ts",
)
#: Pure-Python wheels fetched from PyPI: (distribution, version, import names). tblib lets
#: pytest-pyodide's ``run_in_pyodide`` send an exception's traceback from Pyodide to the host.
EXTRA_WHEELS = (("micropip", "0.11.1", ("micropip",)), ("tblib", "3.2.2", ("tblib",)))
WHEEL_CACHE = REPO / ".cache" / "wheels"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _copy_if_changed(src: Path, dst: Path) -> None:
    if dst.exists() and dst.stat().st_size == src.stat().st_size and _sha256(dst) == _sha256(src):
        return
    shutil.copyfile(src, dst)


def _fetch_wheel(dist: str, version: str) -> Path:
    """The cached py3-none-any wheel of ``dist==version``, downloading it from PyPI if needed."""
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    pattern = f"{dist.replace('-', '_')}-{version}-py3-none-any.whl"
    cached = WHEEL_CACHE / pattern
    if not cached.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--python-version", "3.14", "-d", str(WHEEL_CACHE),
             f"{dist}=={version}"],
            check=True,
        )
    if not cached.exists():
        raise SystemExit(f"pip did not produce {cached}")
    return cached


def _wheel_metadata(wheel: Path) -> tuple[str, str, list[str]]:
    """(name, version, top-level import names) read from a wheel's own metadata."""
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = zf.read(meta_name).decode()
        fields = dict(
            line.split(": ", 1)
            for line in meta.splitlines()
            if ": " in line and not line[0].isspace()
        )
        tops = sorted(
            {n.split("/")[0] for n in zf.namelist() if "/" in n and ".dist-info" not in n}
        )
    return fields["Name"], fields["Version"], tops


def _lock_entry(wheel: Path, imports: list[str]) -> tuple[str, dict]:
    name, version, _ = _wheel_metadata(wheel)
    key = name.lower().replace("_", "-")
    return key, {
        "name": key,
        "version": version,
        "file_name": wheel.name,
        "install_dir": "site",
        "sha256": _sha256(wheel),
        "package_type": "package",
        "imports": imports,
        "depends": [],
        "unvendored_tests": False,
    }


def build(out: Path, wheel: Path) -> Path:
    """Populate ``out`` and return the path of the generated lock file."""
    if not NPM_PYODIDE.is_dir():
        raise SystemExit("node_modules/pyodide is missing: run `npm ci` (scripts/setup.sh does)")
    out.mkdir(parents=True, exist_ok=True)
    for name in CORE_FILES:
        _copy_if_changed(NPM_PYODIDE / name, out / name)
    npm_lock = json.loads((NPM_PYODIDE / "pyodide-lock.json").read_text())
    packages: dict[str, dict] = {}
    wanted = {wheel.name}
    for dist, version, imports in EXTRA_WHEELS:
        src = _fetch_wheel(dist, version)
        _copy_if_changed(src, out / src.name)
        key, entry = _lock_entry(out / src.name, list(imports))
        packages[key] = entry
        wanted.add(src.name)
    _copy_if_changed(wheel, out / wheel.name)
    key, entry = _lock_entry(out / wheel.name, _wheel_metadata(wheel)[2])
    packages[key] = entry
    # Stale wheels (older builds of ours) would otherwise accumulate.
    for stale in out.glob("*.whl"):
        if stale.name not in wanted:
            stale.unlink()
    lock = {"info": npm_lock["info"], "packages": packages}
    lock_path = out / "pyodide-lock.json"
    lock_path.write_text(json.dumps(lock, indent=1, sort_keys=True) + "\n")
    # A stable name for the current wheel, so pages need not know the version.
    (out / "xet_pyodide_wheel.json").write_text(json.dumps({"wheel": wheel.name}) + "\n")
    return lock_path


def _latest_wheel() -> Path:
    wheels = sorted((REPO / "dist").glob("xet_pyodide-*-py3-none-any.whl"),
                    key=lambda p: p.stat().st_mtime)
    if not wheels:
        raise SystemExit("no wheel in dist/: run ./build_wheel.sh first")
    return wheels[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "web" / "pyodide")
    parser.add_argument("--wheel", type=Path, default=None)
    args = parser.parse_args(argv)
    lock = build(args.out, args.wheel or _latest_wheel())
    print(f"Pyodide distribution ready in {args.out} ({lock.name} lists "
          f"{len(json.loads(lock.read_text())['packages'])} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
