"""Download throughput in a browser vs hf_xet, and page memory while streaming a big file.

    .venv/bin/python bench/download.py [--size-mib 512] [--stream-mib 2048] [--repeat 2]
        [--modes js-blob,js-stream] [--workers N] [--cache none] [--session-config JSON]
        [--profile] [--json] [--no-build]

One local CAS server (``xet_cas_server --web``) serves everything: a temporary web root linking
``web/*`` and ``bench/``, the reconstructions and the xorb bytes, so the bench page and the CAS
are same-origin. Steps:

1. a file of ``--size-mib`` MiB (half random, half compressible phrase soup: LZ4 and raw
   chunks) is uploaded once by hf_xet;
2. **hf_xet** downloads it ``--repeat`` times before and ``--repeat`` times after the browser
   runs (a child process each, fresh cache dir; the clock runs around
   ``start_download_file`` … group exit only);
3. **our client** downloads it in a *bare* headless Chromium (no Playwright/CDP attached) on
   ``bench/download_page.html``, which loads the front door (``web/xet_pyodide.js``: Pyodide,
   the wheel, the hashing workers), warms up with one small ranged download, then times each
   mode ``--repeat`` times. Modes: ``js-blob`` (``session.downloadToBlob``), ``js-stream``
   (``session.downloadStream`` read to the end) — the JavaScript API a page uses
   (``js-response``: that stream collected by ``new Response(stream).blob()``); and, from
   ``bench/download_payload.py`` (Python API in Pyodide): ``drain`` (``download_stream``,
   blocks dropped), ``blob``, ``fetch`` / ``jsfetch`` / ``sfetch`` (transport ceilings: every
   xorb range fetched — whole, whole without entering Python, or streamed —, nothing
   decoded). Chunk cache off (``--cache browser`` turns the Cache API on).
   The page reports with ``sendBeacon`` to a small report server;
4. memory: a ``--stream-mib`` file is uploaded and downloaded with ``downloadToBlob`` by a
   fresh Chromium while this script samples the RSS of Chromium's processes from ``/proc``
   every 50 ms; reported: the renderer's peak and its RSS once Pyodide was loaded, the sum
   over all Chromium processes, and the Pyodide wasm heap size.

``chromium.cpu_seconds``: CPU time of the renderers, the network service, the rest of
Chromium and the CAS server over all timed modes (from the page's "ready" to its report), with
the wall time: on a 2-core machine, a sum near ``2 × wall`` means the download is CPU-bound.

Prints one JSON object with ``--json``: ``ratio_<mode>`` = best hf_xet time / best time of
the mode (≥ 1: we are faster), ``stream.renderer_peak_mib``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "cas_server"))
sys.path.insert(0, str(REPO / "bench"))

from _chromium import bare_chromium  # noqa: E402

MIB = 1 << 20
#: ``--session-config``: SessionConfig fields for the Python-API modes in the page.
SESSION_CONFIG: dict[str, Any] = {}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def ensure_wheel() -> None:
    """Rebuild the wheel if needed, with the build's output on stderr (stdout is the JSON)."""
    from tests.plugins.runtimes import ensure_wheel_fresh

    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        ensure_wheel_fresh()
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def write_data(path: Path, size: int, seed: int) -> None:
    """Half random MiB blocks, half compressible ones (random 64-byte phrases from a set of
    64), interleaved at random; written in 1 MiB blocks."""
    rng = random.Random(seed)
    phrases = [rng.randbytes(64) for _ in range(64)]
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(MIB, left)
            if rng.random() < 0.5:
                block = rng.randbytes(n)
            else:
                block = b"".join(rng.choices(phrases, k=n // 64 + 1))[:n]
            f.write(block)
            left -= n


def web_root(tmp: Path) -> Path:
    root = tmp / "web"
    root.mkdir()
    for entry in (REPO / "web").iterdir():
        (root / entry.name).symlink_to(entry)
    (root / "bench").symlink_to(REPO / "bench")
    return root


# --------------------------------------------------------------------------- hf_xet

HF_CODE = """
import hf_xet, json, sys, time
spec = json.loads(sys.argv[1])
session = hf_xet.XetSession(hf_xet.XetConfig())
started = time.perf_counter()
with session.new_file_download_group(endpoint=spec["endpoint"], token=spec["token"],
                                     token_expiry_unix_secs=spec["exp"]) as group:
    group.start_download_file(hf_xet.XetFileInfo(spec["hash"], spec["size"]), spec["dest"])
print(json.dumps(time.perf_counter() - started))
"""


def hf_xet_download(server: Any, file: dict[str, Any], tmp: Path, run: int) -> float:
    token, exp = server.token("read")
    dest = tmp / f"hf-{run}.out"
    spec = {"endpoint": server.url, "token": token, "exp": exp, "dest": str(dest), **file}
    env = {**os.environ, "HF_HOME": str(tmp / f"hf-home-{run}")}
    out = subprocess.run(
        [sys.executable, "-c", HF_CODE, json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=True,
    )
    seconds = float(out.stdout.strip().splitlines()[-1])
    if dest.stat().st_size != file["size"]:
        raise RuntimeError("hf_xet wrote a file of the wrong size")
    dest.unlink()
    shutil.rmtree(tmp / f"hf-home-{run}", ignore_errors=True)
    return seconds


# --------------------------------------------------------------------------- chromium


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(root: int) -> list[tuple[int, str]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            cmd = ""
        out.append((pid, cmd))
        todo += children.get(pid, [])
    return out


def _cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def _thread_kind(name: str) -> str:
    """A renderer thread's role from its name: main, worker (Web Workers), v8 (V8's helper
    threads: garbage collection, compilation), io, pool (Chromium's thread pool) or other."""
    if name == "CrRendererMain":
        return "main"
    if name.startswith("DedicatedWorker") or name.startswith("WebWorker"):
        return "worker"
    if name.startswith("V8"):
        return "v8"
    if "IOThread" in name:
        return "io"
    if name.startswith("ThreadPool"):
        return "pool"
    return "other:" + name


def _threads(pid: int) -> list[tuple[int, str, int]]:
    """(tid, kind, CPU ticks) of a renderer's threads (kind: see :func:`_thread_kind`)."""
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out.append((int(tid), _thread_kind(name), int(fields[11]) + int(fields[12])))
    return out


def _process_kind(cmd: str) -> str:
    if "--type=renderer" in cmd:
        return "renderer"
    if "NetworkService" in cmd or "network.mojom" in cmd:
        return "network"
    return "browser_other" if "--type=" in cmd else "browser"


class MemorySampler(threading.Thread):
    """Samples Chromium's processes every ``interval`` s: peak renderer RSS, peak total, and
    CPU time per kind of process (plus ``extra_pids``, e.g. the CAS server) since
    :meth:`mark`."""

    def __init__(self, root_pid: int, interval: float = 0.05, extra_pids: tuple[int, ...] = ()):
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.interval = interval
        self.extra_pids = extra_pids
        self.stop_event = threading.Event()
        self.renderer_peak = 0
        self.total_peak = 0
        self.renderer_now = 0
        self._ticks: dict[int, tuple[str, int]] = {}
        self._marked: dict[int, int] = {}
        self._marked_at = time.monotonic()

    def _sample_cpu(self, procs: list[tuple[int, str]]) -> None:
        for pid, cmd in procs:
            ticks = _cpu_ticks(pid)
            if ticks:
                self._ticks[pid] = (_process_kind(cmd), ticks)
            if "--type=renderer" in cmd:  # its threads too: main, workers, the rest
                for tid, name, thread_ticks in _threads(pid):
                    if thread_ticks:
                        self._ticks[-tid] = (f"renderer:{name}", thread_ticks)
        for pid in self.extra_pids:
            ticks = _cpu_ticks(pid)
            if ticks:
                self._ticks[pid] = ("server", ticks)

    def mark(self) -> None:
        """Start counting CPU time from now."""
        self._sample_cpu(_descendants(self.root_pid))
        self._marked = {pid: ticks for pid, (_, ticks) in self._ticks.items()}
        self._marked_at = time.monotonic()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds per kind of process since :meth:`mark`, and the wall time."""
        hz = os.sysconf("SC_CLK_TCK")
        out: dict[str, float] = {"wall": round(time.monotonic() - self._marked_at, 2)}
        for pid, (kind, ticks) in self._ticks.items():
            spent = (ticks - self._marked.get(pid, 0)) / hz
            out[kind] = round(out.get(kind, 0.0) + spent, 2)
        return out

    def run(self) -> None:
        while not self.stop_event.is_set():
            renderer = total = 0
            procs = _descendants(self.root_pid)
            for pid, cmd in procs:
                rss = _rss_kib(pid)
                total += rss
                if "--type=renderer" in cmd:
                    renderer = max(renderer, rss)
            self._sample_cpu(procs)
            self.renderer_now = renderer
            self.renderer_peak = max(self.renderer_peak, renderer)
            self.total_peak = max(self.total_peak, total)
            time.sleep(self.interval)


def run_chromium(server: Any, config: dict[str, Any], timeout: float) -> dict[str, Any]:
    from scripts.static_server import StaticServer

    reports_root = Path(tempfile.mkdtemp(prefix="xet-reports-"))
    reports = StaticServer(reports_root).start_background()
    url = (
        f"{server.url}/bench/download_page.html?report={quote(reports.url)}"
        f"&config={quote(json.dumps(config))}"
    )
    with bare_chromium(url) as proc:
        server_proc = getattr(server, "_proc", None)
        sampler = MemorySampler(proc.pid, extra_pids=(server_proc.pid,) if server_proc else ())
        sampler.start()
        try:
            ready = reports.wait_report("ready", timeout=300)
            ready_rss = sampler.renderer_now
            sampler.renderer_peak = ready_rss  # from here on: the download's peak
            sampler.mark()
            report = reports.wait_report("download", timeout=timeout)
            sampler.stop_event.set()
            sampler.join()
            cpu = sampler.cpu_seconds()
        finally:
            sampler.stop_event.set()
            reports.shutdown()
            reports.server_close()
            shutil.rmtree(reports_root, ignore_errors=True)
    assert isinstance(report, dict) and isinstance(ready, dict)
    if not report.get("ok"):
        raise RuntimeError(f"Chromium page failed: {report.get('error')}")
    result = report["result"]
    if not result.get("cross_origin_isolated"):
        raise RuntimeError("bench page was not cross-origin isolated")
    result["memory"] = {
        "renderer_ready_mib": round(ready_rss / 1024, 1),
        "renderer_peak_mib": round(sampler.renderer_peak / 1024, 1),
        "chromium_total_peak_mib": round(sampler.total_peak / 1024, 1),
        "wasm_heap_before_mib": round(result["wasm_heap_before"] / MIB, 1),
        "wasm_heap_after_mib": round(result["wasm_heap_after"] / MIB, 1),
    }
    result["cpu_seconds"] = cpu
    return result


# --------------------------------------------------------------------------- main


def upload(server: Any, tmp: Path, name: str, size: int, seed: int) -> dict[str, Any]:
    path = tmp / name
    started = time.perf_counter()
    write_data(path, size, seed)
    up = server.hf_upload([path], hf_home=tmp / f"hf-up-{name}")
    path.unlink()
    log(
        f"{name}: {size / MIB:.0f} MiB generated and uploaded by hf_xet in "
        f"{time.perf_counter() - started:.1f} s"
    )
    f = up["files"][0]
    return {"hash": f["hash"], "size": f["size"]}


def page_config(
    server: Any, file: dict[str, Any], modes: list[str], cache: str | None, workers: int | None
) -> dict:
    token, exp = server.token("read", ttl=7200)
    return {
        "config": SESSION_CONFIG,
        "workers": workers,
        "endpoint": server.url,
        "token": token,
        "exp": exp,
        "file": file,
        "modes": modes,
        "cache": cache,
    }


def best(runs: list[dict[str, Any]], mode: str) -> dict[str, Any] | None:
    mine = [r for r in runs if r["mode"] == mode]
    return min(mine, key=lambda r: r["seconds"]) if mine else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--stream-mib", type=int, default=2048, help="0: skip the memory run")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--modes",
        default="js-blob,js-stream",
        help="js-blob, js-stream (JavaScript API); "
        "blob, drain, fetch, jsfetch, sfetch (download_payload)",
    )
    parser.add_argument("--workers", type=int, default=None, help="hashing workers in the page")
    parser.add_argument(
        "--session-config", default="{}", help="SessionConfig fields (JSON) for Python modes"
    )
    parser.add_argument("--cache", default=None, help="chunk cache kind in the page (none)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the page's Python during js-* runs (slower); printed to stderr",
    )
    args = parser.parse_args(argv)
    SESSION_CONFIG.update(json.loads(args.session_config))
    if not args.no_build:
        ensure_wheel()
    from xet_cas_server.launcher import ServerProcess

    modes = [m for m in args.modes.split(",") if m]
    out: dict[str, Any] = {"size_mib": args.size_mib, "modes": modes, "cache": args.cache}
    with tempfile.TemporaryDirectory(prefix="xet-dl-bench-") as tmp_name:
        tmp = Path(tmp_name)
        server = ServerProcess(tmp / "data", web=web_root(tmp), signed_url_ttl=7200).start()
        try:
            file = upload(server, tmp, "main", args.size_mib * MIB, 1)
            # hf_xet before and after the browser runs: load drift hits both sides alike.
            hf_times = [hf_xet_download(server, file, tmp, i) for i in range(args.repeat)]
            config = page_config(server, file, modes * args.repeat, args.cache, args.workers)
            config["profile"] = args.profile
            result = run_chromium(server, config, timeout=1800)
            runs = [r for r in result["runs"] if not r.get("warmup")]
            for r in runs:
                if "profile" in r:
                    log(f"profile of {r['mode']} ({r['seconds']:.2f} s):\n{r.pop('profile')}")
            hf_times += [hf_xet_download(server, file, tmp, i) for i in range(args.repeat)]
            log(f"hf_xet: {[round(t, 2) for t in hf_times]} s")
            log(f"chromium: {[(r['mode'], round(r['seconds'], 2)) for r in runs]} s")
            hf_best = min(hf_times)
            size = file["size"]
            out["hf_xet"] = {"seconds": hf_times, "mb_per_s": size / hf_best / 1e6}
            out["chromium"] = {
                "runs": runs,
                "workers": result["workers"],
                "user_agent": result["user_agent"],
                "cpu_seconds": result["cpu_seconds"],
            }
            for mode in modes:
                b = best(runs, mode)
                if b is not None:
                    out[f"ratio_{mode}"] = round(hf_best / b["seconds"], 3)
            out["throughput_memory"] = result["memory"]
            if args.stream_mib:
                big = upload(server, tmp, "stream", args.stream_mib * MIB, 2)
                stream_config = page_config(server, big, ["js-blob"], None, args.workers)
                mem = run_chromium(server, stream_config, 3600)
                out["stream"] = {
                    "size_mib": args.stream_mib,
                    "seconds": mem["runs"][0]["seconds"],
                    "mb_per_s": mem["runs"][0]["mb_per_s"],
                    **mem["memory"],
                }
        finally:
            server.close()
    if args.json:
        print(json.dumps(out))
    else:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
