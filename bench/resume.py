"""Resumable uploads: what a rerun after a kill costs, as a fraction of a full upload.

    python bench/resume.py [--size-mb 512] [--repeat 3] [--kill-at 0.6]

For each repetition, with fresh random content:

* ``full`` — ``python -m xet_pyodide upload`` of the file to a fresh local CAS server, start to
  finish (``--no-resume``);
* ``killed`` — the same command on another fresh server with a fresh ``--resume-dir``, killed
  with SIGKILL once ``--kill-at`` of the file's bytes are in acknowledged xorbs (read from the
  resume journal);
* ``resumed`` — the same command again, same resume directory: it finishes the upload.

Prints one JSON object: per step the median and min/max of xorb bytes the server received,
wall seconds and the client's CPU-seconds (``wait4`` rusage), and the ratios ``resumed /
full`` for bytes and seconds; with the load average. Nothing here leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "cas_server")]

from xet_cas_server.launcher import ServerProcess  # noqa: E402

from xet_pyodide.session.resume import acknowledged_bytes, journal_name  # noqa: E402

MIB = 1 << 20


def _run(args: list[str], kill_when: Any = None) -> tuple[float, float, int, str]:
    """Run the CLI; returns (wall s, CPU s, exit status, stdout). ``kill_when()`` true: SIGKILL."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if kill_when is not None:
        while proc.poll() is None and not kill_when():
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, proc.returncode, out


def _acknowledged(journal: Path, endpoint: str, scope: str) -> int:
    return acknowledged_bytes(journal.read_bytes() if journal.exists() else None, endpoint, scope)


def _command(server: ServerProcess, path: Path, *extra: str) -> list[str]:
    token, exp = server.token("write", ttl=7200)
    return [
        sys.executable, "-m", "xet_pyodide", "upload", "--endpoint", server.url,
        "--token", token, "--token-exp", str(exp), *extra, str(path),
    ]  # fmt: skip


def one_round(work: Path, size: int, kill_at: float, seed: int) -> dict[str, Any]:
    path = work / "file.bin"
    rng = random.Random(seed)
    with path.open("wb") as f:
        for _ in range(size // (16 * MIB)):
            f.write(rng.randbytes(16 * MIB))
        f.write(rng.randbytes(size % (16 * MIB)))
    out: dict[str, Any] = {}
    full = ServerProcess(work / f"full-{seed}").start()
    try:
        wall, cpu, rc, _ = _run(_command(full, path, "--no-resume"))
        assert rc == 0
        out["full"] = {"bytes": full.stats()["xorb_bytes_received"], "wall": wall, "cpu": cpu}
    finally:
        full.close()
    server = ServerProcess(work / f"resume-{seed}").start()
    resume_dir = work / f"state-{seed}"
    journal = resume_dir / f"{journal_name(server.url, '')}.xrs"
    try:
        cmd = _command(server, path, "--resume-dir", str(resume_dir))
        target = kill_at * size
        wall, cpu, rc, _ = _run(cmd, lambda: _acknowledged(journal, server.url, "") >= target)
        acknowledged = _acknowledged(journal, server.url, "")
        out["killed"] = {
            "bytes": server.stats()["xorb_bytes_received"],
            "wall": wall,
            "cpu": cpu,
            "acknowledged_fraction": acknowledged / size,
            "killed": rc != 0,
        }
        server.reset_stats()
        wall, cpu, rc, stdout = _run(cmd)
        assert rc == 0, "the resumed upload failed"
        metrics = json.loads(stdout)["metrics"]
        out["resumed"] = {
            "bytes": server.stats()["xorb_bytes_received"],
            "wall": wall,
            "cpu": cpu,
            "bytes_resumed": metrics["bytes_resumed"],
        }
    finally:
        server.close()
    path.unlink()
    return out


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=512, help="file size, MiB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kill-at", type=float, default=0.6, help="acknowledged fraction")
    args = parser.parse_args()
    size = args.size_mb * MIB
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            rounds.append(one_round(Path(tmp), size, args.kill_at, seed=i + 1))
    steps = {
        step: {key: summary([r[step][key] for r in rounds]) for key in ("bytes", "wall", "cpu")}
        for step in ("full", "killed", "resumed")
    }
    ratios = {
        "bytes_resumed_over_full": summary(
            [r["resumed"]["bytes"] / r["full"]["bytes"] for r in rounds]
        ),
        "seconds_resumed_over_full": summary(
            [r["resumed"]["wall"] / r["full"]["wall"] for r in rounds]
        ),
        "cpu_resumed_over_full": summary([r["resumed"]["cpu"] / r["full"]["cpu"] for r in rounds]),
    }
    print(
        json.dumps(
            {
                "size_mib": args.size_mb,
                "kill_at": args.kill_at,
                "repeat": args.repeat,
                "loadavg_after": os.getloadavg(),
                "steps": steps,
                "ratios": ratios,
                "rounds": rounds,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
