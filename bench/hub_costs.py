"""What the Hub API costs the local server per file: the work it does itself, with the
server's CPU-seconds (from /proc) beside wall-clock.

    python bench/hub_costs.py [--size-mb 64] [--repeat 3]

For each repetition, on a fresh server and fresh random content:

* ``lfs_put`` — a plain LFS ``basic`` PUT of the file, which the server chunks into xorbs and a
  shard (what ``HF_HUB_DISABLE_XET=1`` costs it);
* ``first_commit`` — a commit naming, by sha256, a file uploaded through Xet (hf_xet): the server
  proves the shard's sha256 claim by reconstructing and hashing the file once;
* ``second_commit`` — the same content committed again (already proven: no reconstruction);
* ``resolve_get`` — a plain ``GET …/resolve/…`` of the file (reconstructed and streamed).

Prints one JSON object: per step the median and min/max of wall seconds, server CPU-seconds
and MB/s over the repetitions. Nothing here leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "cas_server")]

from xet_cas_server.launcher import ServerProcess  # noqa: E402

MB = 1_000_000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(server: ServerProcess, fn: Any) -> tuple[float, float, Any]:
    assert server.pid is not None
    cpu, wall = cpu_seconds(server.pid), time.perf_counter()
    out = fn()
    return time.perf_counter() - wall, cpu_seconds(server.pid) - cpu, out


def commit(c: httpx.Client, repo: str, path: str, digest: str, size: int) -> str:
    lines = [
        {"key": "header", "value": {"summary": "bench"}},
        {"key": "lfsFile", "value": {"path": path, "oid": digest, "size": size}},
    ]
    r = c.post(f"/api/models/{repo}/commit/main", content="\n".join(map(json.dumps, lines)))
    r.raise_for_status()
    return r.json()["commitOid"]


def lfs_put(server: ServerProcess, c: httpx.Client, repo: str, data: bytes) -> tuple[float, float]:
    digest = hashlib.sha256(data).hexdigest()
    batch = c.post(
        f"/{repo}.git/info/lfs/objects/batch",
        json={
            "operation": "upload",
            "transfers": ["basic"],
            "objects": [{"oid": digest, "size": len(data)}],
        },
    ).json()
    href = batch["objects"][0]["actions"]["upload"]["href"]
    wall, cpu, r = timed(server, lambda: httpx.put(href, content=data, timeout=600))
    r.raise_for_status()
    return wall, cpu


def xet_steps(
    server: ServerProcess, c: httpx.Client, repo: str, src: Path, hf_home: Path
) -> dict[str, tuple[float, float]]:
    data = src.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    server.hf_upload([src], hf_home=hf_home)
    out = {
        "first_commit": timed(server, lambda: commit(c, repo, "a.bin", digest, len(data)))[:2],
        "second_commit": timed(server, lambda: commit(c, repo, "b.bin", digest, len(data)))[:2],
    }
    wall, cpu, r = timed(server, lambda: c.get(f"/{repo}/resolve/main/a.bin"))
    assert hashlib.sha256(r.content).hexdigest() == digest
    out["resolve_get"] = (wall, cpu)
    return out


def one_round(tmp: Path, size: int, seed: int) -> dict[str, tuple[float, float]]:
    server = ServerProcess(tmp / f"data-{seed}").start()
    try:
        auth = {"Authorization": f"Bearer {server.dev_secret}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=600) as c:
            c.post("/api/repos/create", json={"name": "bench", "organization": "o"})
            out = {"lfs_put": lfs_put(server, c, "o/bench", os.urandom(size))}
            src = tmp / f"xet-{seed}.bin"
            src.write_bytes(os.urandom(size))
            out.update(xet_steps(server, c, "o/bench", src, tmp / f"hf-{seed}"))
            return out
    finally:
        server.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mb", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    size = args.size_mb * MB
    rounds = []
    with tempfile.TemporaryDirectory(prefix="hub-costs-") as tmp:
        for i in range(args.repeat):
            rounds.append(one_round(Path(tmp), size, i))
    report: dict[str, Any] = {"size_mb": args.size_mb, "repeat": args.repeat}
    for step in rounds[0]:
        walls = [r[step][0] for r in rounds]
        cpus = [r[step][1] for r in rounds]
        report[step] = {
            "wall_s": [
                round(statistics.median(walls), 3),
                round(min(walls), 3),
                round(max(walls), 3),
            ],
            "server_cpu_s": [
                round(statistics.median(cpus), 3),
                round(min(cpus), 3),
                round(max(cpus), 3),
            ],
            "mb_per_s_median": round(size / MB / statistics.median(walls), 1),
        }
    print(
        "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in report.items()) + "\n}"
    )


if __name__ == "__main__":
    main()
