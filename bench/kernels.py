"""Kernel throughput in three runtimes, as ratios against native references measured in this run.

    .venv/bin/python bench/kernels.py [--json] [--size-mib 64] [--repeat 5] [--settle 4]
                                      [--runtimes cpython,node,chromium] [--no-build]

Each runtime runs ``bench/kernels_payload.py`` (through the public kernel API, so copies from
Python into the module and back are included; single thread):

* ``cpython``  — wasmtime in this process;
* ``node``     — Pyodide in Node (``bench/kernels_node.mjs``);
* ``chromium`` — Pyodide in a *bare* headless Chromium (no Playwright/CDP attached while timing)
  on ``bench/kernels_page.html``, served cross-origin-isolated by ``scripts/static_server.py``;
  the page POSTs its result back to that server.

In Node and Chromium the payload first waits ``--settle`` seconds: just after start-up the
engine is still compiling Pyodide in background threads, which slowed the first kernels timed
by 10-20 % on a 2-core machine (see ``kernels_payload.py``).

Native references, same inputs: ``blake3`` and ``lz4.block`` from PyPI (single-threaded), and
our own C (gear, BG4, CRC-64) compiled natively with ``cc -O3 -march=native`` and called
through ctypes.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
DIST = REPO / "web" / "pyodide"
CSRC = REPO / "xet_pyodide" / "kernels" / "csrc"
KERNELS = [
    "gear_scan",
    "blake3_64k",
    "lz4_compress",
    "lz4_decompress",
    "bg4_split",
    "crc64",
    "sha256",
]

sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))
import kernels_payload  # noqa: E402
from _chromium import page_result  # noqa: E402

from tests.plugins.runtimes import ensure_wheel_fresh  # noqa: E402


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------- native


def _native_lib(tmp: Path) -> ctypes.CDLL:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise RuntimeError("no C compiler for the native reference")
    lib = tmp / "xk_native.so"
    subprocess.run(
        [
            cc,
            "-O3",
            "-march=native",
            "-shared",
            "-fPIC",
            "-o",
            str(lib),
            str(CSRC / "gear.c"),
            str(CSRC / "bg4.c"),
            str(CSRC / "crc64.c"),
        ],
        check=True,
    )
    return ctypes.CDLL(str(lib))


def native(size_mib: int, chunk_kib: int, repeat: int) -> dict[str, float]:
    import blake3
    import lz4.block

    n, chunk = size_mib << 20, chunk_kib << 10
    data = kernels_payload.random_bytes(n, 1)
    key = bytes(range(32))
    small = kernels_payload.text_bytes(min(n, 16 << 20), 2)
    chunks = [small[i : i + chunk] for i in range(0, len(small), chunk)]
    packed = [lz4.block.compress(c, store_size=False) for c in chunks]
    best = kernels_payload._best
    with tempfile.TemporaryDirectory() as tmp:
        lib = _native_lib(Path(tmp))
        state = ctypes.create_string_buffer(8)
        out = ctypes.create_string_buffer(4 * (n // 1024 + 64))
        dst = ctypes.create_string_buffer(chunk)
        gear = lambda: lib.xk_gear_scan(data, n, state, out, n // 1024 + 64)  # noqa: E731
        crc = lambda: lib.xk_crc64_nvme(data, n, state)  # noqa: E731

        def bg4() -> None:
            for c in chunks:
                lib.xk_bg4_split(c, len(c), dst)
                dst.raw  # noqa: B018  (copy the result out, like the API does)

        def b3() -> None:
            mv = memoryview(data)
            for i in range(0, n, chunk):
                blake3.blake3(mv[i : i + chunk], key=key).digest()

        def lz4_c() -> None:
            for c in chunks:
                lz4.block.compress(c, store_size=False)

        def lz4_d() -> None:
            for p, c in zip(packed, chunks, strict=True):
                lz4.block.decompress(p, uncompressed_size=len(c))

        return {
            "gear_scan": best(gear, n, repeat),
            "blake3_64k": best(b3, n, repeat),
            "lz4_compress": best(lz4_c, len(small), repeat),
            "lz4_decompress": best(lz4_d, len(small), repeat),
            "bg4_split": best(bg4, len(small), repeat),
            "crc64": best(crc, n, repeat),
            "sha256": best(lambda: hashlib.sha256(data).digest(), n, repeat),  # OpenSSL
        }


# --------------------------------------------------------------------------------- runtimes


def run_cpython(config: dict) -> dict:
    os.environ.pop("XET_PYODIDE_KERNELS", None)
    return asyncio.run(kernels_payload.run(**config))


def run_node(config: dict) -> dict:
    out = subprocess.run(
        ["node", str(BENCH / "kernels_node.mjs"), str(DIST), json.dumps(config)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_chromium(config: dict) -> dict:
    result = page_result({"/bench": BENCH}, "/bench/kernels_page.html", config, "kernels",
                         timeout=900)  # fmt: skip
    if not result.get("cross_origin_isolated"):
        raise RuntimeError("bench page was not cross-origin isolated")
    return result


RUNNERS = {"cpython": run_cpython, "node": run_node, "chromium": run_chromium}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--chunk-kib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--settle",
        type=float,
        default=4.0,
        help="seconds Node/Chromium wait after start-up before timing (default 4)",
    )
    parser.add_argument("--runtimes", default="cpython,node,chromium")
    parser.add_argument("--no-build", action="store_true", help="do not rebuild the wheel")
    args = parser.parse_args(argv)
    runtimes = [r for r in args.runtimes.split(",") if r]
    unknown = set(runtimes) - set(RUNNERS)
    if unknown:
        parser.error(f"unknown runtimes {sorted(unknown)}")
    config = {"size_mib": args.size_mib, "chunk_kib": args.chunk_kib, "repeat": args.repeat}
    if args.settle < 0:
        parser.error("--settle must be >= 0")
    if not args.no_build and set(runtimes) & {"node", "chromium"}:
        ensure_wheel_fresh()
    started = time.time()
    log("native references")
    ref = native(args.size_mib, args.chunk_kib, args.repeat)
    results: dict[str, dict] = {}
    for name in runtimes:
        log(f"runtime {name}")
        settle = {"settle_s": args.settle} if name != "cpython" else {}
        results[name] = RUNNERS[name]({**config, **settle})
    report = {
        "config": {**config, "settle_s": args.settle},
        "native_gbps": ref,
        "runtimes": {
            name: {
                "backend": r["backend"],
                "gbps": r["gbps"],
                "ratio_vs_native": {k: r["gbps"][k] / ref[k] for k in KERNELS},
                **({"kernel_only_gbps": r["kernel_only_gbps"]} if "kernel_only_gbps" in r else {}),
                "hashlib_sha256_gbps": r.get("hashlib_sha256_gbps"),
                **({"user_agent": r["user_agent"]} if "user_agent" in r else {}),
            }
            for name, r in results.items()
        },
        "lz4_ratio": next(iter(results.values()))["lz4_ratio"] if results else None,
        "seconds": round(time.time() - started, 1),
    }
    if args.json:
        print(json.dumps(report))
        return 0
    head = f"{'kernel':16}{'native GB/s':>13}" + "".join(f"{n:>22}" for n in runtimes)
    print(head)
    for k in KERNELS:
        cells = "".join(
            f"{results[n]['gbps'][k]:>9.3f} GB/s ({results[n]['gbps'][k] / ref[k]:4.2f}x)"
            for n in runtimes
        )
        print(f"{k:16}{ref[k]:>13.3f}{cells}")
    for n in runtimes:
        hashlib_gbps = results[n].get("hashlib_sha256_gbps")
        if hashlib_gbps:
            print(f"{n}: its own hashlib.sha256 on the same bytes: {hashlib_gbps:.3f} GB/s")
        raw = results[n].get("kernel_only_gbps")
        if raw:
            print(
                f"{n}: kernel only (JS calling the exports, no Python, no copies): "
                + ", ".join(f"{k} {v:.3f} GB/s" for k, v in raw.items())
            )
    print(
        f"(single thread, copies from Python included; {args.size_mib} MiB inputs, "
        f"{args.chunk_kib} KiB chunks for BLAKE3/LZ4/BG4; LZ4 ratio {report['lz4_ratio']:.2f}; "
        f"Node/Chromium timed after {args.settle:g} s settling)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
