"""Does Chromium still hang BYOB reads of Blob streams read concurrently in one worker?

    .venv/bin/python bench/byob_stall.py [--mode byob|stream|slice] [--workers 1]
        [--concurrency 2] [--whole | --fetch] [--seconds 40] [--size-mib 512]

Reads a generated Blob in a bare headless Chromium, ``concurrency`` reads at a time in each
of ``workers`` workers (16 MiB ``blob.slice()`` pieces, or the whole Blob with ``--whole``),
for ``seconds``, and prints one JSON line: passes over the Blob and MB/s, or ``"stalled":
true`` when a read never ended. Chromium 156 stalls with ``--mode byob`` and concurrency >= 2
(within 1-20 passes here); ``--concurrency 1``, ``--mode stream`` and ``--mode slice`` do not.
With ``--fetch`` there is no Blob: each read is a GET of the whole data file (``cache:
"no-store"``) whose body a worker reads with a BYOB reader into recycled 1 MiB buffers, as
``web/xet_worker.mjs`` reads xorb ranges (``concurrency`` bodies at a time per worker).
``web/xet_worker.mjs`` depends on this (one BYOB stream per worker at a time, plus a stall
watchdog): rerun it after a Chromium upgrade (docs/browser.md, "Blob reads").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _chromium import bare_chromium  # noqa: E402

from scripts.static_server import StaticServer  # noqa: E402

CACHE = REPO / ".cache" / "bench"


def data_file(size_mib: int) -> Path:
    path = CACHE / f"byob-random-{size_mib}.bin"
    if not path.exists() or path.stat().st_size != size_mib << 20:
        CACHE.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            for _ in range(size_mib):
                f.write(os.urandom(1 << 20))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["byob", "stream", "slice"], default="byob")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=2, help="reads at a time per worker")
    parser.add_argument("--whole", action="store_true", help="read the whole Blob's stream")
    parser.add_argument("--fetch", action="store_true", help="read GET bodies, not a Blob")
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--size-mib", type=int, default=512)
    args = parser.parse_args(argv)
    data = data_file(args.size_mib)
    config = {"mode": args.mode, "workers": args.workers, "concurrency": args.concurrency,
              "whole": args.whole, "fetch": args.fetch, "seconds": args.seconds,
              "dataName": data.name}
    server = StaticServer(
        REPO / "bench", mounts={"/bench": REPO / "bench", "/data": data.parent}
    ).start_background()
    url = f"{server.url}/bench/byob_stall_page.html?config={quote(json.dumps(config))}"
    try:
        with bare_chromium(url):
            try:
                result = server.wait_report("result", timeout=args.seconds + 60)
            except TimeoutError:
                try:
                    progress = server.wait_report("progress", timeout=1)
                except TimeoutError:
                    progress = None
                result = {"ok": False, "stalled": True, "progress": progress}
    finally:
        server.shutdown()
        server.server_close()
    print(json.dumps({**config, **result}))
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
