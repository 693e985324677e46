"""Browser benchmark: xet_pyodide in a bare headless Chromium vs hf_xet (native) and
@huggingface/xetchunk-wasm (the JS peer), on the same bytes, in the same run.

    .venv/bin/python bench/browser.py [--size-mib 1024] [--json] [--memory] [--workers N]
        [--profile] [--sha256-worker auto|on|off] [--body-workers on|off] [--corpus half|float16]

Measured:

(a) chunk + hash throughput: ``xet.hashFile(blob)`` (worker pool; Blob read in 16 MiB blocks)
    vs ``hf_xet.hash_files([path])`` on the same file, and vs @huggingface/xetchunk-wasm over
    the same Blob in the same page; plus ``blob_read_only_mb_s``, the same Blob only read (in
    the same 16 MiB slices, by as many workers as the pool has, bytes discarded): the ceiling
    of any chunk+hash of a Blob in this browser on this machine;
(b) full upload: ``uploadFile(blob)`` + ``finalize()`` to a fresh local CAS server vs hf_xet's
    upload of the same file to another fresh server (SHA-256 computed by both), with the
    CPU-seconds per GiB of every process in ``cpu_s_per_gib`` (bench/_procs.py);
(c) with ``--memory``: a 4 GiB (``--memory-gib``) upload of NEW data — a file of random bytes
    (``.cache/bench/random_<n>gib.bin``) chosen in the page's file input — from a fresh
    browser context (Playwright ``new_context()``: no on-disk profile, like Incognito, so
    Blob data cannot spill to disk; Playwright is attached during this run). Printed: the peak
    renderer RSS (the page and its workers) and the peak RSS of the browser process, where
    Chromium keeps Blob data — its growth over its level before the upload is our proxy for
    the Blob bytes held for the page (from /proc, sampled every 50 ms); and the MB/s.
    ``--memory-only`` skips (a) and (b).

The input is half random bytes, half float32-like values (random mantissas, narrow exponents:
what BG4-LZ4 compresses), or with ``--corpus float16`` float16 weights (:func:`float16_file`),
cached in ``.cache/bench/``. Chromium runs without Playwright/CDP
(it slows fetch uploads several times); the page POSTs its results to the static server.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import resource
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "cas_server"))
sys.path.insert(0, str(REPO / "bench"))

from _chromium import bare_chromium  # noqa: E402
from _procs import (  # noqa: E402
    CpuSampler,
    chromium_summary,
    descends_from,
    parent_pids,
    per_gib,
)
from xet_cas_server.launcher import ServerProcess  # noqa: E402

from scripts.static_server import StaticServer  # noqa: E402
from tests.plugins.runtimes import ensure_wheel_fresh  # noqa: E402

MIB = 1 << 20
BLOCK = 16 * MIB
CACHE = REPO / ".cache" / "bench"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ data


def _random(n: int, seed: int) -> bytearray:
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < n:
        out += rng.randbytes(min(BLOCK, n - len(out)))
    return out


def _float_like(n: int, seed: int) -> bytearray:
    """float32 little endian with sign + exponent bits around 2**-7: random mantissas."""
    data = _random(n, seed)
    table = bytes((b & 0x80) | 0x3C for b in range(256))
    data[3::4] = bytes(data[3::4]).translate(table)
    return data


def _cached_file(path: Path, size: int, what: str, blocks: Iterator[bytes | bytearray]) -> Path:
    """``path``, written from ``blocks`` (a lazy generator, consumed only when the cached file
    is missing or has another size) through a temporary file, so an interrupted run leaves no
    short file behind."""
    if not path.exists() or path.stat().st_size != size:
        CACHE.mkdir(parents=True, exist_ok=True)
        log(f"generating {what}")
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            for block in blocks:
                f.write(block)
        tmp.rename(path)
    return path


def random_file(gib: float) -> Path:
    """A file of ``gib`` GiB of seeded random bytes (new data for every upload to a fresh
    server), cached."""
    size = int(gib * 1024) * MIB
    blocks = (_random(min(64 * MIB, size - start), 7_000_001 + start)
              for start in range(0, size, 64 * MIB))  # fmt: skip
    return _cached_file(CACHE / f"random_{gib:g}gib.bin", size, f"{gib:g} GiB of random data",
                        blocks)  # fmt: skip


#: Standard deviations of the float16 corpus's "tensors" (one per 64 MiB, in turn): the
#: spread of trained weights, from embeddings to narrow projections.
FLOAT16_SIGMAS = (0.02, 0.05, 0.008, 0.1, 0.03, 0.015)


def _float16_high_bytes(sigma: float, seed: int) -> bytes:
    """A 256-byte table mapping a uniform random byte to the high byte (sign, exponent, two
    mantissa bits) of a float16 drawn from N(0, sigma): the table's entries are quantiles of
    65,536 samples, so translating uniform bytes through it gives that byte's distribution."""
    rng = random.Random(seed)
    samples = sorted(struct.pack("<e", rng.gauss(0.0, sigma))[1] for _ in range(1 << 16))
    return bytes(samples[i * 256 + 128] for i in range(256))


def _float16_like(n: int, sigma: float, seed: int) -> bytearray:
    """``n`` bytes of little-endian float16 weights from N(0, sigma): random low bytes (the
    mantissa's low bits are noise in trained weights), high bytes drawn from the normal's
    distribution. No per-value Python: two random streams and one ``translate``."""
    data = _random(n, seed)
    data[1::2] = bytes(data[1::2]).translate(_float16_high_bytes(sigma, seed))
    return data


def float16_file(size_mib: int) -> Path:
    """The float16 corpus: ``size_mib`` MiB of float16 weights as a checkpoint stores them,
    one "tensor" of N(0, sigma) per 64 MiB with sigma from :data:`FLOAT16_SIGMAS`, cached."""
    size = size_mib * MIB
    blocks = (_float16_like(min(64 * MIB, size - start), FLOAT16_SIGMAS[k % len(FLOAT16_SIGMAS)],
                            200_001 + start)
              for k, start in enumerate(range(0, size, 64 * MIB)))  # fmt: skip
    return _cached_file(CACHE / f"float16_weights_{size_mib}mib.bin", size,
                        f"{size_mib} MiB of float16 weights", blocks)  # fmt: skip


#: The inputs a benchmark can run on (``--corpus``).
CORPORA = ("half", "float16")


def bench_file(size_mib: int, corpus: str = "half") -> Path:
    """The benchmark input: ``half`` (half random bytes, half float32-like values) or
    ``float16`` (:func:`float16_file`)."""
    if corpus == "float16":
        return float16_file(size_mib)
    if corpus != "half":
        raise ValueError(f"unknown corpus {corpus!r}: one of {', '.join(CORPORA)}")
    size = size_mib * MIB
    half = size // 2
    randoms = (_random(min(64 * MIB, half - start), 1 + start)
               for start in range(0, half, 64 * MIB))  # fmt: skip
    floats = (_float_like(min(64 * MIB, size - half - start), 100_001 + start)
              for start in range(0, size - half, 64 * MIB))  # fmt: skip
    path = CACHE / f"half_random_half_floats_{size_mib}mib.bin"
    return _cached_file(path, size, f"{size_mib} MiB of test data",
                        itertools.chain(randoms, floats))  # fmt: skip


# ------------------------------------------------------------------------------ processes


@contextlib.contextmanager
def cas_server(root: Path, name: str) -> Iterator[ServerProcess]:
    server = ServerProcess(root / name).start()
    try:
        yield server
    finally:
        server.close()


class RssSampler:
    """Peak RSS of the renderer processes of one Chromium (polls /proc), and of its browser
    process (``root_pid``), where Chromium keeps Blob data: its growth over the baseline is
    the proxy for the Blob bytes held for the page."""

    def __init__(self, root_pid: int, interval: float = 0.05) -> None:
        self.root_pid = root_pid
        self.interval = interval
        self.peak_kib = 0
        self.browser_kib = 0
        self.browser_peak_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def reset(self) -> None:
        self.peak_kib = 0
        self.browser_peak_kib = self.browser_kib

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _renderers(self) -> list[int]:
        parents: dict[int, int] = {}
        renderer: set[int] = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
                if b"--type=renderer" in Path(f"/proc/{entry}/cmdline").read_bytes():
                    renderer.add(int(entry))
        out = []
        for pid in renderer:
            p = pid
            while p in parents and p != self.root_pid:
                p = parents[p]
            if p == self.root_pid:
                out.append(pid)
        return out

    @staticmethod
    def _rss_kib(pid: int) -> int:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def _run(self) -> None:
        pids: list[int] = []
        last_scan = 0.0
        while not self._stop.is_set():
            if time.monotonic() - last_scan > 1.0:
                pids, last_scan = self._renderers(), time.monotonic()
            for pid in pids:
                with contextlib.suppress(OSError, ValueError):
                    self.peak_kib = max(self.peak_kib, self._rss_kib(pid))
            with contextlib.suppress(OSError, ValueError):
                self.browser_kib = self._rss_kib(self.root_pid)
                self.browser_peak_kib = max(self.browser_peak_kib, self.browser_kib)
            self.samples += 1
            self._stop.wait(self.interval)


def _browser_pid() -> int:
    """Pid of the Chromium browser process Playwright started for us (a descendant of this
    process, with no ``--type``)."""
    me = os.getpid()
    parents = parent_pids()
    for pid in sorted(parents):
        if pid == me or not descends_from(pid, me, parents):
            continue
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"chrom" in cmd[0] and not any(a.startswith(b"--type=") for a in cmd):
                return pid
    raise RuntimeError("Chromium's browser process not found")


@contextlib.contextmanager
def fresh_context_page(url: str, upload: Path) -> Iterator[int]:
    """``url`` in a fresh Playwright context of headless Chromium (same executable and
    flags as the tests), ``upload`` chosen in its ``#file`` input once the page loaded;
    yields the browser process's pid."""
    from playwright.sync_api import sync_playwright

    from tests.plugins.runtimes import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.goto(url)
            page.wait_for_function("() => document.getElementById('file') !== null")
            page.set_input_files("#file", str(upload))
            yield _browser_pid()
        finally:
            browser.close()


def run_page(config: dict[str, Any], data_dir: Path, *, sample_rss: bool = False,
             upload: Path | None = None, cpu: CpuSampler | None = None
             ) -> tuple[dict[str, Any], dict[str, float]]:
    """Open the bench page in a bare headless Chromium (or, given an ``upload`` file, in a
    fresh Playwright context that chooses it); return its report (+ RSS figures)."""
    server = StaticServer(
        REPO / "web",
        mounts={"/bench": REPO / "bench", "/node_modules": REPO / "node_modules",
                "/_data": data_dir},
    ).start_background()
    config = {**config, "dataUrl": "/_data/" + config.get("dataName", "")}
    url = f"{server.url}/bench/browser_page.html?config={quote(json.dumps(config))}"
    memory: dict[str, float] = {}
    opened = (fresh_context_page(url, upload) if upload is not None
              else _bare_pid(url))
    with opened as pid:
        if cpu is not None:  # CPU per process (bench/_procs.py)
            cpu.watch_chromium(pid)
        sampler = RssSampler(pid).start() if sample_rss else None
        try:
            server.wait_report("loaded", timeout=300)
            if sampler is not None:
                memory["loaded_mib"] = sampler.peak_kib / 1024
                server.wait_report("memory-start", timeout=300)
                memory["before_upload_mib"] = sampler.peak_kib / 1024
                memory["browser_process_before_mib"] = sampler.browser_kib / 1024
                sampler.reset()
            report = server.wait_report("browser", timeout=3600)
            if sampler is not None:
                memory["peak_during_upload_mib"] = sampler.peak_kib / 1024
                memory["browser_process_peak_mib"] = sampler.browser_peak_kib / 1024
        finally:
            if sampler is not None:
                sampler.stop()
            server.shutdown()
            server.server_close()
    assert isinstance(report, dict)
    if not report.get("ok"):
        raise RuntimeError(f"bench page failed: {report.get('error')}")
    return report["result"], memory


@contextlib.contextmanager
def _bare_pid(url: str) -> Iterator[int]:
    with bare_chromium(url) as proc:
        yield proc.pid


# ------------------------------------------------------------------------------ references


def hf_xet_hash(path: Path, repeat: int) -> tuple[float, str]:
    import hf_xet

    best, digest = float("inf"), ""
    for _ in range(repeat):
        started = time.perf_counter()
        info = hf_xet.hash_files([str(path)])[0]
        best = min(best, time.perf_counter() - started)
        digest = info.hash
    return best, digest


def hf_xet_upload(path: Path, root: Path) -> tuple[float, dict[str, Any]]:
    """hf_xet's upload; ``cpu_s``: its child process (start-up included), ``server_cpu_s``:
    the server's CPU meanwhile."""
    with cas_server(root, "cas-hfxet") as server, CpuSampler() as cpu:
        cpu.watch(server.pid or 0, "server")
        before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
        result = server.hf_upload([path], hf_home=root / "hf-home")
        after, t1 = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
        result["cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        result["server_cpu_s"] = cpu.between(t0, t1).get("server", 0.0)
    return float(result["seconds"]), result


def _sha256_worker(args: argparse.Namespace) -> bool | None:
    return {"auto": None, "on": True, "off": False}[args.sha256_worker]


def throughput(args: argparse.Namespace, path: Path, root: Path) -> dict[str, Any]:
    """(a) and (b): hashing and upload throughput, ours vs the references."""
    size = path.stat().st_size
    log("hf_xet.hash_files")
    hf_hash_s, hf_digest = hf_xet_hash(path, args.repeat)
    log("browser: hashFile, xetchunk-wasm, upload")
    with cas_server(root, "cas-browser") as server, CpuSampler() as cpu:
        cpu.watch(server.pid or 0, "server:cas")
        config = {"mode": "throughput", "cas": server.url, "secret": server.dev_secret,
                  "repeat": args.repeat, "blockSize": BLOCK, "workers": args.workers,
                  "sha256Worker": _sha256_worker(args), "dataName": path.name,
                  "profile": args.profile, "bodyWorkers": args.body_workers == "on"}
        page, _ = run_page(config, path.parent, cpu=cpu)
    if page["upload"].get("profile"):
        log(f"profile of the upload ({page['upload']['seconds']:.2f} s):\n"
            f"{page['upload'].pop('profile')}")
    log("hf_xet upload")
    hf_up_s, hf_up = hf_xet_upload(path, root)
    up_cpu = cpu.between(*page["upload"]["span"])
    mb = size / 1e6
    ours, peer, up = page["ours"], page["xetchunk"], page["upload"]
    return dict(
        workers=page["workers"],
        sha256_worker=page["sha256Worker"],
        chunk_hash_mb_s=mb / ours["seconds"],
        hf_xet_hash_mb_s=mb / hf_hash_s,
        chunk_hash_ratio_vs_hf_xet=hf_hash_s / ours["seconds"],
        blob_read_only_mb_s=mb / page["blobReadOnly"]["seconds"],
        xetchunk_wasm_mb_s=mb / peer["seconds"],
        chunk_hash_ratio_vs_xetchunk_wasm=peer["seconds"] / ours["seconds"],
        upload_mb_s=mb / up["seconds"],
        hf_xet_upload_mb_s=mb / hf_up_s,
        upload_ratio_vs_hf_xet=hf_up_s / up["seconds"],
        hashes_match=ours["fileHash"] == hf_digest == up["file"]["fileHash"]
        == hf_up["files"][0]["hash"],
        xetchunk_hash_matches=peer["fileHash"] == hf_digest,
        sha256_matches=up["file"]["sha256"] == hf_up["files"][0]["sha256"],
        upload_xorb_bytes=up["metrics"]["xorbBytesUploaded"],
        hf_xet_xorb_bytes=hf_up["dedup"]["xorb_bytes_uploaded"],
        user_agent=page["userAgent"],
        # the timed upload, CPU-s per GiB per process (bench/_procs.py); hf_xet: its child
        # process, start-up included
        cpu_s_per_gib={"upload": per_gib(chromium_summary(up_cpu, up_cpu.get("server:cas", 0)),
                                         size),
                       "hf_xet_upload": per_gib({"total_client": hf_up["cpu_s"],
                                                 "server": hf_up["server_cpu_s"]}, size)},
    )


# ------------------------------------------------------------------------------ main


def _cpu_seconds_children() -> float:
    """CPU seconds of this process's waited-for children (Playwright's driver and the
    browser it started, once closed) — taken around a run, the browser's CPU time."""
    usage = os.times()
    return usage.children_user + usage.children_system


def server_cpu_seconds(server: ServerProcess) -> float | None:
    pid = getattr(getattr(server, "_proc", None), "pid", None)
    if pid is None:
        return None
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def build_quietly() -> None:
    """Rebuild the wheel if needed with the build's output on stderr (stdout is the JSON)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        ensure_wheel_fresh()
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--memory", action="store_true", help="also run the 4 GiB memory test")
    parser.add_argument("--memory-only", action="store_true", help="only the memory test")
    parser.add_argument("--memory-gib", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=None, help="default: hardwareConcurrency")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--corpus",
        choices=CORPORA,
        default="half",
        help="(a) and (b)'s file: half random, half float32-like, or float16 weights",
    )
    parser.add_argument(
        "--sha256-worker",
        choices=["auto", "on", "off"],
        default="auto",
        help="loadXet's sha256Worker (auto: the library's default, the pool's SHA-256 chain)",
    )
    parser.add_argument(
        "--body-workers",
        choices=["on", "off"],
        default="on",
        help="off: xorb bodies as page Blobs, as before issue 24 (docs/browser.md)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the page's Python during the upload (slower); printed to stderr",
    )
    args = parser.parse_args(argv)

    build_quietly()
    path = bench_file(args.size_mib, args.corpus)
    out: dict[str, Any] = {
        "size_mib": args.size_mib,
        "cores": os.cpu_count(),
        "corpus": args.corpus,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not args.memory_only:
            out.update(throughput(args, path, root))
        if args.memory or args.memory_only:
            big = random_file(args.memory_gib)
            log(f"browser: {args.memory_gib} GiB upload of new data from a fresh context, "
                "sampling renderer and browser-process RSS")
            with cas_server(root, "cas-memory") as server:
                config = {"mode": "memory", "cas": server.url, "secret": server.dev_secret,
                          "workers": args.workers, "sha256Worker": _sha256_worker(args),
                          "bodyWorkers": args.body_workers == "on"}
                cpu0 = _cpu_seconds_children()
                page, memory = run_page(config, path.parent, sample_rss=True, upload=big)
                server_cpu = server_cpu_seconds(server)
            out.update(
                peak_page_memory_mib_4gib_upload=memory["peak_during_upload_mib"],
                browser_process_peak_mib=memory["browser_process_peak_mib"],
                browser_process_growth_mib=(memory["browser_process_peak_mib"]
                                            - memory["browser_process_before_mib"]),
                page_memory_before_upload_mib=memory["before_upload_mib"],
                memory_upload_mb_s=page["size"] / 1e6 / page["upload"]["seconds"],
                memory_upload_peak_buffered_mib=page["upload"]["metrics"]["peakBufferedBytes"]
                / MIB,
                memory_upload_distinct_mib=page["distinctBytes"] / MIB,
                memory_pyodide_heap_mib=(page["pyodideHeapBytes"] or 0) / MIB,
                memory_upload_xorb_bytes=page["upload"]["metrics"]["xorbBytesUploaded"],
                memory_upload_seconds=page["upload"]["seconds"],
                memory_run_cpu_s_chromium=_cpu_seconds_children() - cpu0,
                memory_run_cpu_s_cas_server=server_cpu,
                loadavg_1min=os.getloadavg()[0],
            )
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:40} {value:.3f}" if isinstance(value, float) else f"{key:40} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
