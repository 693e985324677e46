"""Where the local server's CPU goes per GiB uploaded, stage by stage, in-process (no HTTP).

    python bench/server_costs.py [--size-mib 256] [--repeat 3]

The input is bench/browser.py's file (half random bytes, half float32-like values), packed into
xorbs and one shard by this package's own client code (what ``xet.hub`` uploads), once, before
anything is timed. Then, per repetition on a fresh store, each stage the server runs for those
bytes is timed with ``time.process_time`` (CPU of this process, all threads) beside wall time:

* ``crc64`` — the grant PUT's CRC-64/NVME check over the body's pieces (64 KiB, as uvicorn
  hands them over);
* ``stage`` — ``Store.stage_xorb``: the pieces written to a staging file, validated through a
  mapping of it (decode every chunk, BLAKE3, xorb hash, footer);
* ``validate`` — of that, ``validation.validate_xorb`` alone, on the body in memory;
* ``commit`` — ``Store.commit_staged_xorb``: the footer appended, fsync, rename, index row;
* ``shard`` — parsing, validating and storing the shard;
* ``proof`` — ``hub.content.sha256_of``: the commit's reconstruction + SHA-256 of the file.

(Before 2026-12-07 the grant PUT joined the pieces, wrote them to staging, and the commit read
them back, validated and wrote them again: docs/browser.md, "Measuring CPU", has both.)

Prints one JSON object: per stage the median (min, max) CPU-seconds per GiB of file and the
median wall seconds per GiB, and the validation backend in use.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "cas_server"), str(REPO / "bench")]

from browser import MIB, bench_file  # noqa: E402
from xet_cas_server import native, validation  # noqa: E402
from xet_cas_server.checksum import crc64_nvme_of_pieces  # noqa: E402
from xet_cas_server.hub import content  # noqa: E402
from xet_cas_server.store import Store  # noqa: E402

from xet_pyodide.core.xorb import Xorb  # noqa: E402

GIB = 1 << 30
PIECE = 64 << 10


def pack(path: Path) -> tuple[list[Xorb], bytes, str]:
    """Xorbs and shard of ``path`` as a Xet client builds them (the server's own
    :func:`~xet_cas_server.hub.content.pack_file`), and the sha256."""
    import hashlib

    from xet_pyodide.core.shard import serialize_shard
    from xet_pyodide.core.shard_model import Shard

    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            sha.update(block)
    xorbs: list[Xorb] = []
    entry, entries = content.pack_file(path, sha.digest(), xorbs.append)
    return xorbs, serialize_shard(Shard([entry], entries)), sha.hexdigest()


def timed(totals: dict[str, list[float]], stage: str, fn: Callable[..., Any], *args: Any) -> Any:
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn(*args)
    t = totals.setdefault(stage, [0.0, 0.0])
    t[0] += time.process_time() - cpu
    t[1] += time.perf_counter() - wall
    return out


def one_round(tmp: Path, xorbs: list[Xorb], shard: bytes, sha: str) -> dict[str, list[float]]:
    store = Store(tmp, max_shard_bytes=64 << 20)
    totals: dict[str, list[float]] = {}
    try:
        for x in xorbs:
            pieces = [x.body[i : i + PIECE] for i in range(0, len(x.body), PIECE)]
            timed(totals, "crc64", crc64_nvme_of_pieces, pieces)
            timed(totals, "validate", validation.validate_xorb, x.body, x.hash)
            staged = tmp / "staged"
            valid = timed(totals, "stage", store.stage_xorb, pieces, x.hash, staged)
            timed(totals, "commit", store.commit_staged_xorb, x.hash, staged, valid, len(x.body))
        parsed = timed(totals, "shard", store.parse_shard, shard)
        timed(totals, "shard", store.put_shard, shard, parsed, "r")
        file_hash = parsed.files[0].file_hash.hex()
        got = timed(totals, "proof", content.sha256_of, store, file_hash)
        assert got == sha, (got, sha)
    finally:
        store.close()
    return totals


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    path = bench_file(args.size_mib)
    xorbs, shard, sha = pack(path)
    scale = GIB / (args.size_mib * MIB)
    rounds = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="server-costs-") as tmp:
            rounds.append(one_round(Path(tmp), xorbs, shard, sha))
    from xet_pyodide.kernels import get_kernels

    report: dict[str, Any] = {
        "size_mib": args.size_mib,
        "repeat": args.repeat,
        "xorbs": len(xorbs),
        "backend": f"{native.NAME}; kernels {get_kernels().name}",
    }
    for stage in rounds[0]:
        cpus = [r[stage][0] * scale for r in rounds]
        walls = [r[stage][1] * scale for r in rounds]
        report[stage] = {
            "cpu_s_per_gib": [round(statistics.median(cpus), 3), round(min(cpus), 3),
                              round(max(cpus), 3)],
            "wall_s_per_gib": round(statistics.median(walls), 3),
        }  # fmt: skip
    total = [sum(r[s][0] for s in r if s != "validate") * scale for r in rounds]
    report["total_cpu_s_per_gib"] = round(statistics.median(total), 3)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
