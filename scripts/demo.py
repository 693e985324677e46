"""The main job: serve the demo and exercise it end to end in headless Chromium.

Current stage (foundation): serves ``web/`` with cross-origin isolation, loads Pyodide and our
wheel in headless Chromium, and checks a kernel result against a known value. The CAS server,
upload and download stages plug in here as they land.

Usage: ``python scripts/demo.py [--serve]`` (``--serve`` keeps the server running afterwards so
you can open the printed URL yourself).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.static_server import StaticServer  # noqa: E402
from tests.plugins.runtimes import BrowserRuntime, BrowserThread  # noqa: E402

DATA_KEY_HEX = "6697f5775b9550de3135cbaca597181c9de421109beb2b58b4d0b04b93adf229"
ABC_CHUNK_HASH_RAW = "14f0aff7063580a845c69db7e9a99af15661f9702567495c4e28d08d69291307"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="keep serving after the run")
    args = parser.parse_args(argv)
    server = StaticServer(REPO / "web").start_background()
    print(f"demo served at {server.url}/harness.html", flush=True)
    ok = False
    browser = BrowserThread()
    try:
        started = time.monotonic()
        runtime = BrowserRuntime(browser, server.url)
        loaded = time.monotonic() - started
        env = runtime.call("smoke", "environment")
        digest = runtime.call("smoke", "blake3_of", "abc", DATA_KEY_HEX)
        ok = digest == ABC_CHUNK_HASH_RAW and runtime.cross_origin_isolated
        print(f"Chromium: Pyodide {env['python'][0]}.{env['python'][1]} + xet_pyodide "
              f"{env['version']} loaded in {loaded:.1f} s, kernels={env['kernels']}, "
              f"crossOriginIsolated={runtime.cross_origin_isolated}")
        print(f"chunk hash of b'abc': {digest} ({'OK' if ok else 'MISMATCH'})")
    finally:
        browser.close()
    if args.serve:
        print("serving; press Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    server.shutdown()
    print("demo:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
