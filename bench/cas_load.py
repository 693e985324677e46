"""Load figure for the local CAS server: N parallel hf_xet uploads of M MB each.

    python bench/cas_load.py --clients 8 --size-mb 50 [--download] [--url URL --dev-secret S]

Starts a server on a temporary data dir (unless ``--url`` points at a running one), writes N
distinct random files, runs N hf_xet upload commits in parallel child processes (each with its
own empty cache, so every byte really travels), and prints one JSON object: wall time,
aggregate throughput, per-client times, error count and the server's byte counters. With
``--download`` the files are then downloaded in parallel too and compared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "cas_server")]

from xet_cas_server import hfxet_driver  # noqa: E402
from xet_cas_server.launcher import ServerProcess, child_pythonpath  # noqa: E402

MB = 1_000_000


def write_inputs(tmp: Path, clients: int, size: int) -> list[tuple[Path, str]]:
    out = []
    for i in range(clients):
        path = tmp / f"input-{i}.bin"
        digest = hashlib.sha256()
        with open(path, "wb") as f:
            left = size
            while left:
                block = os.urandom(min(left, 8 * MB))
                digest.update(block)
                f.write(block)
                left -= len(block)
        out.append((path, digest.hexdigest()))
    return out


def parallel(
    server: ServerProcess, specs: list[dict[str, Any]], tmp: Path, tag: str
) -> tuple[float, list[Any]]:
    env = {"PYTHONPATH": child_pythonpath()}
    started = time.monotonic()
    procs = [
        hfxet_driver.spawn(s, hf_home=tmp / f"hf-{tag}-{i}", env=env) for i, s in enumerate(specs)
    ]
    results: list[Any] = []
    for p in procs:
        try:
            results.append(hfxet_driver.collect(p, timeout=1800))
        except hfxet_driver.DriverError as e:
            results.append(e)
    return time.monotonic() - started, results


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * MB):
            digest.update(block)
    return digest.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--size-mb", type=int, default=50)
    ap.add_argument("--download", action="store_true", help="also download everything in parallel")
    ap.add_argument("--url", help="use a running server instead of starting one")
    ap.add_argument("--dev-secret", help="dev secret of the running server (with --url)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="cas-load-") as tmp_name:
        tmp = Path(tmp_name)
        server = ServerProcess(tmp / "data", dev_secret=args.dev_secret)
        if args.url:
            server.url = args.url.rstrip("/")
        else:
            server.start()
        try:
            inputs = write_inputs(tmp, args.clients, args.size_mb * MB)
            server.reset_stats()
            specs = [server.hf_spec("upload", files=[str(p)]) for p, _ in inputs]
            cpu0 = cpu_seconds(server.pid)
            up_seconds, up_results = parallel(server, specs, tmp, "up")
            cpu1 = cpu_seconds(server.pid)
            stats = server.stats()
            errors = [str(r) for r in up_results if isinstance(r, Exception)]
            mismatched = [
                str(path)
                for (path, sha), r in zip(inputs, up_results, strict=True)
                if not isinstance(r, Exception) and r["files"][0]["sha256"] != sha
            ]
            total = args.clients * args.size_mb * MB
            report: dict[str, Any] = {
                "clients": args.clients,
                "size_mb": args.size_mb,
                "total_mb": total / MB,
                "upload_seconds": round(up_seconds, 2),
                "upload_throughput_mb_s": round(total / MB / up_seconds, 1),
                "upload_client_seconds": [
                    r["seconds"] for r in up_results if not isinstance(r, Exception)
                ],
                "errors": len(errors) + len(mismatched),
                "error_messages": errors[:5] + mismatched[:5],
                "server": {
                    k: stats[k]
                    for k in (
                        "xorb_bytes_received",
                        "shard_bytes_received",
                        "xorbs_inserted",
                        "files_registered",
                    )
                },
                "server_statuses": stats["statuses"],
                "cpus": os.cpu_count(),
            }
            if cpu0 is not None and cpu1 is not None:
                report["server_cpu_seconds_upload"] = round(cpu1 - cpu0, 2)
            if args.download:
                ok = [
                    (r["files"][0], sha)
                    for r, (_, sha) in zip(up_results, inputs, strict=True)
                    if not isinstance(r, Exception)
                ]
                specs = [
                    server.hf_spec("download", items=[{**f, "dest": str(tmp / f"out-{i}")}])
                    for i, (f, _) in enumerate(ok)
                ]
                server.reset_stats()
                cpu0 = cpu_seconds(server.pid)
                down_seconds, down_results = parallel(server, specs, tmp, "down")
                cpu1 = cpu_seconds(server.pid)
                bad = [str(r) for r in down_results if isinstance(r, Exception)]
                bad += [
                    f"out-{i}"
                    for i, (_, sha) in enumerate(ok)
                    if file_sha256(tmp / f"out-{i}") != sha
                ]
                report.update(
                    download_seconds=round(down_seconds, 2),
                    download_throughput_mb_s=round(len(ok) * args.size_mb / down_seconds, 1),
                    download_errors=len(bad),
                    xorb_bytes_served=server.stats()["xorb_bytes_served"],
                )
                if cpu0 is not None and cpu1 is not None:
                    report["server_cpu_seconds_download"] = round(cpu1 - cpu0, 2)
                report["errors"] += len(bad)
        finally:
            if not args.url:
                server.close()
    print(json.dumps(report, indent=2))
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
