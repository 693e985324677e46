"""Hub clients side by side: xet_pyodide's ``xet.hub`` vs @huggingface/hub in one headless
Chromium page, with huggingface_hub + hf_xet (native) as the anchor, on the same bytes.

    .venv/bin/python bench/peers.py [--sizes-mib 256,1024] [--repeat 2] [--dedup-mib 1024]
        [--cache none|memory] [--corpus half|float16] [--json]

(a) Throughput, per size: in one page (bare headless Chromium, no Playwright/CDP while
    timing), the same generated ``File`` goes through ``@huggingface/hub``'s ``uploadFiles``
    and through ``xet.hub.uploadFiles`` (both: preupload, SHA-256, chunking, xorbs, shard,
    commit), then through each side's ``downloadFile``, read to the end. Each upload goes to a
    fresh local Hub server of its own (same code, same machine): nothing deduplicates across
    clients or runs. ``--repeat`` runs, alternating which client goes first. xet.hub's chunk
    cache is off (``--cache memory``: a fresh one per download, its cost included), so no
    run reads what an earlier one cached. huggingface_hub
    (``upload_file`` / ``hf_hub_download`` with hf_xet) runs on the same file, against fresh
    servers too. Printed: MB/s of each, median and range over the runs, and the ratios.
(b) Dedup across commits: the ``--dedup-mib`` file, then the same file with 10 % of its bytes
    changed (ten 1 % stretches spread over it) at the same path, a second commit: seconds and
    bytes sent (xorbs + shards, as the server counted them) of that second upload, per client.
    xet.hub remembers where its first upload's chunks went (``UploadMemory``, in the page) as
    hf_xet does in its local shard cache (``native``); ``native_cold`` is hf_xet with a fresh
    cache for the second upload (global dedup only), @huggingface/hub has no such memory.

The throughput input is half random bytes, half float32-like values (bench/browser.py's file),
or with ``--corpus float16`` float16 weights (``browser.float16_file``); the dedup scenario
always uses the first. The page
and the Hub are on different origins (CORS), as a site and huggingface.co are.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "cas_server"))
sys.path.insert(0, str(REPO / "bench"))

from _chromium import page_result  # noqa: E402
from _procs import CpuSampler, chromium_summary, per_gib  # noqa: E402
from browser import CACHE, CORPORA, MIB, bench_file, build_quietly, log  # noqa: E402
from xet_cas_server.launcher import ServerProcess, child_pythonpath  # noqa: E402

from tests.cpython._hub_helpers import offline_env  # noqa: E402

#: @huggingface/hub only takes tokens starting with hf_: the servers' dev secret is one.
SECRET = "hf_bench_peers_dev_secret"


def bundle_hfjs(out_dir: Path) -> None:
    """@huggingface/hub's browser build as one ES module (as the tests bundle it)."""
    subprocess.run(
        [
            str(REPO / "node_modules" / ".bin" / "esbuild"),
            str(REPO / "node_modules" / "@huggingface" / "hub" / "dist" / "browser" / "index.mjs"),
            "--bundle", "--format=esm", "--platform=browser", "--log-level=warning",
            f"--outfile={out_dir / 'hub.mjs'}",
        ],
        check=True,
    )  # fmt: skip


def changed_file(path: Path, fraction: float = 0.10, stretches: int = 10) -> Path:
    """``path`` with ``fraction`` of its bytes replaced by new random ones, in ``stretches``
    equal runs spread evenly over the file (cached beside it)."""
    out = path.with_name(path.stem + f"_changed{int(fraction * 100)}.bin")
    size = path.stat().st_size
    if out.exists() and out.stat().st_size == size:
        return out
    run = int(size * fraction) // stretches
    rng = random.Random(4242)
    tmp = out.with_suffix(".tmp")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        for i in range(stretches):
            start = (size * i) // stretches + (size // stretches - run) // 2
            dst.write(src.read(start - src.tell()))
            src.seek(run, os.SEEK_CUR)
            dst.write(rng.randbytes(run))
        dst.write(src.read())
    tmp.rename(out)
    return out


@contextlib.contextmanager
def hub_servers(root: Path, names: list[str]) -> Iterator[dict[str, ServerProcess]]:
    """Fresh local Hub servers (one data directory each), stopped on exit."""
    servers: dict[str, ServerProcess] = {}
    try:
        for name in names:
            servers[name] = ServerProcess(root / name, dev_secret=SECRET).start()
        yield servers
    finally:
        for server in servers.values():
            server.close()


def run_page(config: dict[str, Any], data_dir: Path, hfjs_dir: Path,
             sampler: CpuSampler | None = None) -> dict[str, Any]:  # fmt: skip
    mounts = {"/bench": REPO / "bench", "/_data": data_dir, "/_hfjs": hfjs_dir}
    return page_result(mounts, "/bench/peers_page.html", config, "peers", timeout=7200,
                       loaded_timeout=300,
                       on_browser=sampler.watch_chromium if sampler else None)  # fmt: skip


def native(server: ServerProcess, steps: list[dict[str, Any]], home: Path) -> dict[str, Any]:
    """huggingface_hub + hf_xet in a child process (see bench/peers_native.py)."""
    env = offline_env({
        "HF_ENDPOINT": server.url, "HF_TOKEN": SECRET, "HF_HOME": str(home),
        "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "PYTHONPATH": child_pythonpath(),
    })  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "peers_native.py"), json.dumps({"steps": steps})],
        capture_output=True, text=True, env=env, timeout=3600,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"huggingface_hub failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def sent(server: ServerProcess) -> int:
    stats = server.stats()
    return int(stats["xorb_bytes_received"] + stats["shard_bytes_received"])


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def throughput(
    size_mib: int,
    repeat: int,
    root: Path,
    hfjs_dir: Path,
    cache: str,
    sha256_hasher: str,
    corpus: str = "half",
) -> dict[str, Any]:
    path = bench_file(size_mib, corpus)
    names = [f"{c}-{size_mib}-{i}" for c in ("hfjs", "xet", "native") for i in range(repeat)]
    sampler = CpuSampler()
    with hub_servers(root, names) as servers, sampler:
        for name, server in servers.items():
            if server.pid is not None:
                sampler.watch(server.pid, f"server:{name}")
        config = {
            "mode": "throughput", "repeat": repeat, "secret": SECRET, "cache": cache,
            "sha256Hasher": sha256_hasher,
            "dataUrl": "/_data/" + path.name,
            "servers": {c: [servers[f"{c}-{size_mib}-{i}"].url for i in range(repeat)]
                        for c in ("hfjs", "xet")},
        }  # fmt: skip
        log(f"{size_mib} MiB: page (@huggingface/hub and xet.hub, {repeat} runs each)")
        page = run_page(config, path.parent, hfjs_dir, sampler)
        log(f"{size_mib} MiB: huggingface_hub + hf_xet")
        anchors = []
        for i in range(repeat):
            steps = [{"name": "native", "repo": f"bench/native-{i}", "path": str(path),
                      "create": True, "download": True}]  # fmt: skip
            server = servers[f"native-{size_mib}-{i}"]
            anchors.append(native(server, steps, root / f"hf-home-{size_mib}-{i}")["native"])
        # how each run's server proved the committed sha256: during the upload / by rebuilding
        proofs = {
            name: [
                server.stats().get(f"sha256_proofs_{k}")
                for k in ("streamed", "partly_streamed", "rebuilt")
            ]
            for name, server in servers.items()
        }
    mb = page["size"] / 1e6
    out: dict[str, Any] = {"size_mib": size_mib, "runs": repeat, "workers": page["workers"]}
    out["sha256_proofs_streamed_partly_rebuilt"] = proofs
    out["cpu_s_per_gib"] = cpu_per_gib(sampler, page, anchors, size_mib)
    rates: dict[str, dict[str, list[float]]] = {}
    for client in ("hfjs", "xet"):
        runs = [r for r in page["runs"] if r["client"] == client]
        rates[client] = {k: [mb / r[k] for r in runs] for k in ("upload", "download")}
    rates["native"] = {k: [mb / a[k] for a in anchors] for k in ("upload", "download")}
    # when each phase of xet.hub's uploads began (seconds after the call), per run
    out["xet_upload_phase_starts"] = [
        {k: round(v, 2) for k, v in r["phases"].items()} for r in page["runs"]
        if r["client"] == "xet"
    ]  # fmt: skip
    for client, by_op in rates.items():
        for op, values in by_op.items():
            out[f"{client}_{op}_mb_s"] = spread(values)
    for op in ("upload", "download"):
        xet = out[f"xet_{op}_mb_s"]["median"]
        out[f"{op}_ratio_vs_hfjs"] = xet / out[f"hfjs_{op}_mb_s"]["median"]
        out[f"{op}_ratio_vs_native"] = xet / out[f"native_{op}_mb_s"]["median"]
        # per run: the clients alternate who goes first, so pair runs by index
        pairs = zip(rates["xet"][op], rates["hfjs"][op], strict=True)
        out[f"{op}_ratio_vs_hfjs_per_run"] = [x / h for x, h in pairs]
    return out


def timeline(sampler: CpuSampler, span: list[float], size_mib: int) -> list[dict[str, float]]:
    """Cores busy per 0.5 s of an upload: ``page``, ``workers``, ``chromium`` (every Chromium
    process), ``server`` (all the runs' servers) and ``machine`` (every process on the
    machine)."""
    out = []
    for row in sampler.timeline(span[0], span[1], 0.5):
        chromium = sum(v for k, v in row.items() if ":" not in k and k != "t")
        server = sum(v for k, v in row.items() if k.startswith("server:"))
        out.append({"t": row["t"], "page": row.get("page", 0.0),
                    "workers": row.get("workers", 0.0), "chromium": round(chromium, 2),
                    "server": round(server, 2),
                    "machine": row.get("machine:busy", 0.0)})  # fmt: skip
    return out


def cpu_per_gib(
    sampler: CpuSampler, page: dict[str, Any], anchors: list[dict[str, Any]], size_mib: int
) -> dict[str, dict[str, list[dict[str, float]]]]:
    """Per client and operation, one entry per run: CPU-seconds per GiB of each process role
    (bench/_procs.py; Chromium: page, workers, browser, network, ... and total_client = every
    Chromium process; native: total_client = hf_xet's process), the run's own server, the
    wall time and the load average (1 min) at the end of the operation. A Chromium download's
    row also has ``drain_at`` (when the client's call returned its Blob, epoch seconds),
    ``drain_s`` and ``drain``: the page's, the browser process's and all Chromium's CPU per
    GiB while the bench read that Blob back (bench/blob_drain.mjs, the same for every
    client; @huggingface/hub's Blob is lazy, so its whole download is in its drain)."""
    size = page["size"]
    out: dict[str, dict[str, list[dict[str, float]]]] = {}
    for r in page["runs"]:
        server = f"server:{r['client']}-{size_mib}-{r['run']}"
        for op in ("upload", "download"):
            cpu = sampler.between(*r[f"{op}Span"])
            row = per_gib(chromium_summary(cpu, cpu.get(server, 0.0)), size)
            row["wall_s"] = round(r[op], 3)
            row["load_average"] = sampler.load_between(*r[f"{op}Span"])
            row["span"] = [round(t, 3) for t in r[f"{op}Span"]]  # epoch seconds: other samplers
            if op == "upload":  # cores busy per 0.5 s: where the upload leaves a core idle
                row["timeline"] = timeline(sampler, r["uploadSpan"], size_mib)
            else:  # the part of the span spent reading the client's Blob back (the bench's)
                drain_at, end = r["drainAt"], r["downloadSpan"][1]
                row["drain_at"] = round(drain_at, 3)
                row["drain_s"] = round(end - drain_at, 3)
                drain = per_gib(chromium_summary(sampler.between(drain_at, end), 0.0), size)
                row["drain"] = {k: drain[k] for k in ("page", "browser", "total_client")}
            out.setdefault(r["client"], {}).setdefault(op, []).append(row)
    for i, a in enumerate(anchors):
        server = f"server:native-{size_mib}-{i}"
        for op in ("upload", "download"):
            cpu = sampler.between(*a[f"{op}_span"])
            row = per_gib({"total_client": a[f"{op}_cpu_s"], "server": cpu.get(server, 0.0)},
                          size)  # fmt: skip
            row["wall_s"] = round(a[op], 3)
            row["load_average"] = sampler.load_between(*a[f"{op}_span"])
            out.setdefault("native", {}).setdefault(op, []).append(row)
    return out


def dedup(size_mib: int, root: Path, hfjs_dir: Path) -> dict[str, Any]:
    path = bench_file(size_mib)
    changed = changed_file(path)
    names = ["dedup-hfjs", "dedup-xet", "dedup-native", "dedup-native_cold"]
    with hub_servers(root, names) as servers:
        config = {
            "mode": "dedup", "secret": SECRET, "dataUrl": "/_data/" + path.name,
            "changedUrl": "/_data/" + changed.name,
            "servers": {c: [servers[f"dedup-{c}"].url] for c in ("hfjs", "xet")},
        }  # fmt: skip
        log(f"dedup {size_mib} MiB: page")
        page = run_page(config, path.parent, hfjs_dir)
        log(f"dedup {size_mib} MiB: huggingface_hub + hf_xet")
        native_runs = {}
        for label, fresh_home in (("native", False), ("native_cold", True)):
            server = servers[f"dedup-{label}"]
            home = root / f"hf-home-{label}"
            first = native(server, [{"name": "first", "repo": "bench/native-dedup",
                                     "path": str(path), "create": True}], home)  # fmt: skip
            before = sent(server)
            home2 = root / f"hf-home-{label}-2" if fresh_home else home
            second = native(server, [{"name": "second", "repo": "bench/native-dedup",
                                      "path": str(changed)}], home2)  # fmt: skip
            native_runs[label] = {"first": first["first"]["upload"],
                                  "second": second["second"]["upload"],
                                  "bytesSent": sent(server) - before}  # fmt: skip
    out: dict[str, Any] = {"size_mib": size_mib, "changed_fraction": 0.10}
    clients = {**page["clients"], **native_runs}
    for client, r in clients.items():
        out[f"{client}_first_upload_s"] = r["first"]
        out[f"{client}_changed_upload_s"] = r["second"]
        out[f"{client}_changed_bytes_sent"] = r["bytesSent"]
    return out


def table(results: list[dict[str, Any]], dedup_result: dict[str, Any] | None) -> str:
    lines = ["| size | op | @huggingface/hub MB/s | xet.hub MB/s | hf_xet native MB/s |"
             " xet / hfjs | xet / native |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        for op in ("upload", "download"):
            cells = []
            for client in ("hfjs", "xet", "native"):
                s = r[f"{client}_{op}_mb_s"]
                cells.append(f"{s['median']:.0f} ({s['min']:.0f}–{s['max']:.0f})")
            per_run = ", ".join(f"{x:.2f}" for x in r[f"{op}_ratio_vs_hfjs_per_run"])
            lines.append(f"| {r['size_mib']} MiB | {op} | {' | '.join(cells)} | "
                         f"{r[f'{op}_ratio_vs_hfjs']:.2f}× ({per_run}) | "
                         f"{r[f'{op}_ratio_vs_native']:.2f}× |")  # fmt: skip
    keys = ("page", "workers", "renderer_other", "browser", "network", "gpu", "utility",
            "total_client", "server")  # fmt: skip
    for r in results:
        lines += ["", f"{r['size_mib']} MiB: CPU-seconds per GiB, per run (bench/_procs.py; "
                      "native total_client = hf_xet's process)", "",
                  f"| client | op | run | wall s | load | {' | '.join(keys)} |",
                  "|---|---|---|---|---|" + "---|" * len(keys)]  # fmt: skip
        for client, ops in r["cpu_s_per_gib"].items():
            for op, rows in ops.items():
                for i, row in enumerate(rows):
                    cells = " | ".join(f"{row[k]:.2f}" if k in row else "–" for k in keys)
                    lines.append(f"| {client} | {op} | {i} | {row['wall_s']:.2f} | "
                                 f"{row['load_average']:.1f} | {cells} |")  # fmt: skip
    for r in results:
        for run in r["xet_upload_phase_starts"]:
            lines.append(f"\n{r['size_mib']} MiB xet.hub upload, phases began at (s): {run}")
    if dedup_result:
        d = dedup_result
        lines += ["", f"Second commit of the {d['size_mib']} MiB file with 10 % changed:", "",
                  "| client | first upload s | changed upload s | bytes sent |",
                  "|---|---|---|---|"]  # fmt: skip
        for client in ("hfjs", "xet", "native", "native_cold"):
            lines.append(f"| {client} | {d[f'{client}_first_upload_s']:.1f} | "
                         f"{d[f'{client}_changed_upload_s']:.1f} | "
                         f"{d[f'{client}_changed_bytes_sent'] / MIB:.1f} MiB |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mib", default="256,1024", help="comma-separated file sizes")
    parser.add_argument("--repeat", type=int, default=2, help="runs per client and size (>= 2)")
    parser.add_argument("--dedup-mib", type=int, default=1024, help="0 skips the dedup scenario")
    parser.add_argument("--cache", choices=("none", "memory"), default="none",
                        help="xet.hub's chunk cache during the downloads")  # fmt: skip
    parser.add_argument("--sha256-hasher", choices=("pool", "hashlib", "kernel", "worker"),
                        default="pool",
                        help="what computes xet.hub's upload SHA-256: the pool's workers from "
                             "their slots (the default), on the page (hashlib, the wasm "
                             "kernel) or the pool's side worker")  # fmt: skip
    parser.add_argument("--corpus", choices=CORPORA, default="half",
                        help="the throughput runs' file: half random, half float32-like "
                             "(the default) or float16 weights")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    build_quietly()
    load = os.getloadavg()[0]
    log(f"load average {load:.2f} ({os.cpu_count()} cores)")
    out: dict[str, Any] = {"cores": os.cpu_count(), "load_average_at_start": load,
                           "cache": args.cache, "sha256_hasher": args.sha256_hasher,
                           "corpus": args.corpus, "sizes": []}  # fmt: skip
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        root = Path(tmp)
        hfjs_dir = root / "hfjs"
        hfjs_dir.mkdir()
        bundle_hfjs(hfjs_dir)
        for size in (int(s) for s in args.sizes_mib.split(",") if s):
            out["sizes"].append(
                throughput(
                    size, args.repeat, root, hfjs_dir, args.cache, args.sha256_hasher, args.corpus
                )
            )
        if args.dedup_mib:
            out["dedup"] = dedup(args.dedup_mib, root, hfjs_dir)
    out["load_average_at_end"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(out))
    else:
        print(table(out["sizes"], out.get("dedup")))
        print(f"\nload average {out['load_average_at_start']:.2f} at start, "
              f"{out['load_average_at_end']:.2f} at the end; {out['cores']} cores")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
