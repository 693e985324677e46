"""Which request-body mechanism keeps Chromium's memory bounded during large uploads?

    .venv/bin/python bench/upload_bodies.py [--modes blob,u8,worker,xhr,stream]
        [--total-mib 1024] [--body-mib 64] [--inflight 4] [--recycle-mib 256] [--profile]

For each mode a fresh headless Chromium (no Playwright; ``--incognito`` by default, so Blob
data cannot spill to the profile's disk, as in a Playwright context or an Incognito window;
``--profile`` uses an on-disk profile instead) opens ``bench/upload_bodies_page.html``, which
POSTs ``--total-mib`` of random bytes in bodies of ``--body-mib`` (``--inflight`` at a time)
to a sink on the bench server (127.0.0.1, HTTP/1.1, body read and discarded):

- ``blob``: ``fetch(url, {body: new Blob([u8])})``, no reference kept afterwards;
- ``u8``: ``fetch(url, {body: u8})`` from a pool of ``--inflight`` reused buffers;
- ``xhr``: ``XMLHttpRequest.send(u8)``, same pool;
- ``stream``: a ``ReadableStream`` body with ``duplex: "half"``;
- ``worker``: the buffer transferred to a dedicated worker that fetches it and transfers it
  back; a worker is retired after ``--recycle-mib`` and terminated once idle.

Printed per mode: outcome, MB/s, and the peak RSS (sampled from /proc every 50 ms) of the
browser process (where Blob data lives), the renderer (page + workers) and the network
process, during the upload and 3 s after it (no allocation meanwhile: what no collection
returned stays).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _procs import descends_from, parent_pids  # noqa: E402

from scripts.static_server import StaticServer, _Handler  # noqa: E402
from tests.plugins.runtimes import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

MIB = 1 << 20


class _SinkHandler(_Handler):
    """``POST /_sink``: the body is read and discarded (Content-Length or chunked)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        if not urlsplit(self.path).path.startswith("/_sink"):
            super().do_POST()
            return
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                while size > 0:
                    size -= len(self.rfile.read(min(size, MIB)))
                self.rfile.readline()
                if size == 0 and not self.headers.get("x-more"):
                    break
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                got = len(self.rfile.read(min(left, MIB)))
                if not got:
                    break
                left -= got
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(b"ok")


class SinkServer(StaticServer):
    def __init__(self, root: Path, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.RequestHandlerClass = _SinkHandler


def process_kind(pid: int, root: int) -> str:
    if pid == root:
        return "browser"
    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    if b"--type=renderer" in cmd:
        return "renderer"
    if b"network.mojom.NetworkService" in cmd:
        return "network"
    if b"--type=gpu" in cmd:
        return "gpu"
    return "other"


class ChromiumSampler:
    """RSS of one Chromium's processes by kind (browser, renderer, network, ...), from /proc."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        self.root = root
        self.interval = interval
        self.peak: dict[str, int] = {}
        self.now: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ChromiumSampler:
        self._thread.start()
        return self

    def reset(self) -> None:
        self.peak = dict(self.now)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _members(self) -> dict[int, str]:
        parents = parent_pids()
        out = {}
        for pid in parents:
            if descends_from(pid, self.root, parents):
                with contextlib.suppress(OSError):
                    out[pid] = process_kind(pid, self.root)
        return out

    def _run(self) -> None:
        members: dict[int, str] = {}
        last_scan = 0.0
        while not self._stop.is_set():
            if time.monotonic() - last_scan > 1.0:
                members, last_scan = self._members(), time.monotonic()
            now: dict[str, int] = {}
            for pid, kind in members.items():
                with contextlib.suppress(OSError, ValueError):
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            now[kind] = now.get(kind, 0) + int(line.split()[1]) * 1024
            self.now = now
            for kind, value in now.items():
                self.peak[kind] = max(self.peak.get(kind, 0), value)
            self._stop.wait(self.interval)


def cpu_seconds(root: int) -> float:
    """CPU seconds of ``root`` and its descendants still alive (utime + stime)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                pid, ppid = int(entry), int(fields[1])
                if pid == root or ppid == root or _descends(ppid, root):
                    total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _descends(pid: int, root: int) -> bool:
    for _ in range(8):
        if pid == root:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid <= 1:
            return False
    return False


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    import subprocess

    server = SinkServer(REPO / "web", mounts={"/bench": REPO / "bench"}).start_background()
    config = {"mode": mode, "totalMib": args.total_mib, "bodyMib": args.body_mib,
              "inflight": args.inflight, "recycleMib": args.recycle_mib, "settleMs": 3000}
    url = f"{server.url}/bench/upload_bodies_page.html?config={quote(json.dumps(config))}"
    mib = lambda d: {k: round(v / MIB) for k, v in sorted(d.items())}  # noqa: E731
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        flags = [f"--user-data-dir={profile}"] + ([] if args.profile else ["--incognito"])
        proc = subprocess.Popen([CHROMIUM, "--headless", *CHROMIUM_ARGS, *flags, url],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sampler = ChromiumSampler(proc.pid).start()
        try:
            server.wait_report("start", timeout=120)
            time.sleep(0.2)
            before = mib(sampler.now)
            sampler.reset()
            cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
            server.wait_report("end", timeout=1800)
            cpu1, wall1 = cpu_seconds(proc.pid), time.monotonic()
            during = mib(sampler.peak)
            report = server.wait_report("bodies", timeout=60)
            after = mib(sampler.now)
        finally:
            sampler.stop()
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            server.shutdown()
            server.server_close()
    assert isinstance(report, dict)
    result = report.get("result") or {"mode": mode, "failed": report.get("error")}
    return {**result, "before_mib": before, "peak_mib": during, "after_3s_mib": after,
            "chromium_cpu_s": round(cpu1 - cpu0, 2), "wall_s": round(wall1 - wall0, 2),
            "loadavg": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="blob,u8,xhr,stream,worker")
    parser.add_argument("--total-mib", type=int, default=1024)
    parser.add_argument("--body-mib", type=int, default=64)
    parser.add_argument("--inflight", type=int, default=4)
    parser.add_argument("--recycle-mib", type=int, default=256)
    parser.add_argument("--profile", action="store_true", help="on-disk profile, not incognito")
    args = parser.parse_args()
    for mode in args.modes.split(","):
        print(json.dumps(run_mode(mode, args)), flush=True)


if __name__ == "__main__":
    main()
