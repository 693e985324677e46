"""The CPU floors under issue 20's targets: what the irreducible parts of an upload and a
download cost in this Chromium on this machine, per process.

    .venv/bin/python bench/floor.py [--size-mib 1024] [--repeat 2] [--workers N]
        [--send-modes hold,workeru8,fileblob,xhr,u8] [--parts read,hashfile,combined,...]
        [--combined-bodies records,copy,slices]
        [--peers PEERS.json ...]
        [--browser BROWSER.json ...] [--from FLOOR.json ...] [--json]

In one fresh bare headless Chromium (no Playwright/CDP while timing; bench/_chromium.py),
``bench/floor_page.html`` times, over bench/peers.py's file (``--size-mib``, half random, half
float32-like), each alone and ``--repeat`` times, with the CPU-seconds of every Chromium
process and thread kind sampled from ``/proc`` (bench/_procs.py):

1. **read** — the ``File`` read once in 16 MiB blocks (``blob.slice().arrayBuffer()``, the
   63 bytes before each block included) by the pool's number of workers, copied into a
   ``SharedArrayBuffer`` slot (what the pool's ``readscan`` does, without the scan); and
   **hashfile**: each worker reads whole blocks into its own wasm memory, gear-scans and
   BLAKE3-hashes them (64 KiB chunks), no page thread in the loop (wall MB/s of hashFile's
   per-byte work on these cores);
2. **send** — the bytes PUT to a sink on 127.0.0.1 (body read and discarded by this
   process) in 64 MiB bodies, 4 in flight, by each mechanism of ``--send-modes``: ``hold``
   (today's upload: the page copies each body into one staging buffer, a worker of its own
   makes it a Blob, one handover at a time, sends it and is terminated), ``workeru8`` (a
   filled buffer transferred to a long-lived worker that PUTs it as a ``Uint8Array``: no page
   copy, no Blob), ``fileblob`` (a slice of the ``File`` itself as the body: no byte in the
   renderer at all), ``xhr`` / ``u8`` (the page's ``XMLHttpRequest`` / ``fetch`` of a buffer);
3. **receive** — GETs of 64 MiB from a source on 127.0.0.1, 4 in flight, each read by a
   worker with BYOB into recycled 1 MiB buffers transferred to the page (as io/pool_fetch
   does), then ``discard`` or ``blob``: made into 32 MiB Blobs, one Blob of the whole read
   back to its end (what bench/peers.py does with ``downloadFile``'s Blob). With
   ``--receive-modes``, the worker-side Blob modes too (each body read by a worker and copied
   into a 32 MiB segment of wasm memory, as web/xet_worker.mjs's RangeDecoder writes decoded
   bytes, no decoding): ``wblob<KiB>`` (each full segment made into Blobs of at most <KiB>
   there), ``wsplit<KiB>`` (one Blob per segment made of <KiB>-byte views), ``wstream``
   (each body one Blob, ``new Response(stream).blob()`` of views of a 4-slot ring); the
   first and last body's SHA-256 is checked against the source's. ``--worker-spin-us``
   keeps each worker busy that long per MiB (a decode's CPU), ``--receive-workers`` puts
   the 4 bodies in flight on that many workers. With bench/thread_faults.py (``spans``
   takes this script's ``--json`` too) it shows which thread takes the fresh pages;
4. **kernels** — bench/kernels_raw.mjs on the page's thread: single-thread GB/s of the raw
   kernels on data already in wasm memory (no Python, no copies), so CPU-s per GiB =
   1 GiB / rate; and WebCrypto's one-shot SHA-256 for comparison (no streaming API).
5. **upload/combined** (part ``combined``) — the least a correct upload does, run for real
   and all at once in bare JS + the wasm kernels: the pool's workers read the File once in
   16 MiB blocks, gear-scan, cut chunks (size rules from each block's start: approximate at
   block edges) and BLAKE3 them; the file's SHA-256 chained block by block in file order on
   the worker holding each block; the CRC-64 of each 64 MiB body's records chained in body
   order; each body PUT (4 in flight) as a Blob of 8-byte record headers and ``File.slice()``
   parts (chunks stored raw, no chunk byte copied in the renderer). Its SHA-256 is checked
   against hashlib's; :func:`combined_floor` sets it beside the sum of its parts measured
   alone (read + gear + BLAKE3 + SHA-256 + CRC-64 + send ``fileblob``) and issue 20's 8.
   ``--combined-bodies records,slices`` adds ``upload/combined_slices``, a diagnostic (not a
   valid xorb): the same run with each body one ``File.slice()`` of its blocks, no headers;
   ``copy`` adds ``upload/combined_copy``: each block's records written raw in its worker's
   wasm memory (``xk_encode_records``, CRC included) and made a Blob there, the body a Blob
   of those (valid, one copy, no explicit memory bound: Blobs are freed when collected).

Then :func:`floors` adds them up per target (see its docstring for what each floor assumes)
and, given ``--peers`` (bench/peers.py ``--json`` outputs: server CPU per GiB, hf_xet's and
@huggingface/hub's MB/s) and ``--browser`` (bench/browser.py ``--json`` outputs:
xetchunk-wasm's MB/s), the best wall time on the machine's cores and the best ratios.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _chromium import bare_chromium  # noqa: E402
from _procs import GIB, CpuSampler, chromium_summary, per_gib  # noqa: E402
from upload_bodies import _SinkHandler  # noqa: E402

from scripts.static_server import StaticServer  # noqa: E402

MIB = 1 << 20
SEND_MODES = ("hold", "workeru8", "fileblob", "xhr", "u8")
#: The page's parts (``--parts``), in the order it runs them.
PARTS = ("read", "hashfile", "combined", "send", "receive", "kernels", "webcrypto")
#: Kernel figures the floors use (bench/kernels_raw.mjs names).
KERNELS = ("gear_scan", "blake3_64k", "sha256", "crc64", "records_lz4_random",
           "records_bg4_floats", "records_raw", "decode_raw", "decode_bg4_floats")  # fmt: skip


def log(msg: str) -> None:
    print(f"[floor] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ the server


class _FloorHandler(_SinkHandler):
    """The static server plus ``PUT|POST /_sink`` (body read and discarded: the sink of
    bench/upload_bodies.py) and ``GET /_source?bytes=N`` (N bytes of a random 64 MiB pattern)."""

    pattern = random.Random(5).randbytes(64 * MIB)

    def do_PUT(self) -> None:
        if urlsplit(self.path).path == "/_sink":
            self.do_POST()
        else:
            self.send_error(404)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/_source":
            super().do_GET()
            return
        size = int(parse_qs(url.query)["bytes"][0])
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        # (with "no-cache" alone Chromium writes every response to its disk cache)
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        view = memoryview(self.pattern)
        while size > 0:
            n = min(size, len(view))
            self.wfile.write(view[:n])
            size -= n


class FloorServer(StaticServer):
    def __init__(self, root: Path, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.RequestHandlerClass = _FloorHandler


# ------------------------------------------------------------------------------ measuring


def run_page(config: dict[str, Any], data: Path, timeout: float = 3600) -> dict[str, Any]:
    """Open the floor page in a fresh bare Chromium; return its result with each run's
    CPU-seconds per GiB per Chromium role (``cpu_s_per_gib``) and load average."""
    mounts = {"/bench": REPO / "bench", "/_data": data.parent,
              "/_kernels": REPO / "xet_pyodide" / "kernels"}  # fmt: skip
    server = FloorServer(REPO / "web", mounts=mounts).start_background()
    url = f"{server.url}/bench/floor_page.html?config={quote(json.dumps(config))}"
    sampler = CpuSampler()
    try:
        with sampler, bare_chromium(url) as proc:
            sampler.watch_chromium(proc.pid)
            server.wait_report("loaded", timeout=600)
            answer = server.wait_report("floor", timeout=timeout)
            assert isinstance(answer, dict)
            if not answer.get("ok"):
                raise RuntimeError(f"the floor page failed: {answer.get('error')}")
            result = answer["result"]
            for run in result["runs"]:
                cpu = sampler.between(*run["span"])
                summary = chromium_summary(cpu, 0.0)
                summary.pop("server")
                run["cpu_s"] = {k: round(v, 3) for k, v in summary.items()}
                if run["bytes"]:
                    run["cpu_s_per_gib"] = per_gib(summary, run["bytes"])
                    run["mb_s"] = round(run["bytes"] / 1e6 / run["seconds"], 1)
                run["load_average"] = sampler.load_between(*run["span"])
    finally:
        server.shutdown()
        server.server_close()
    return result


def check_bodies(runs: list[dict[str, Any]], get_mib: int) -> None:
    """The receive runs that give ``bodySha256`` (the first and last body as received) must
    hold the source's bytes."""
    want = hashlib.sha256(_FloorHandler.pattern[: get_mib * MIB]).hexdigest()
    for run in runs:
        got = run.get("bodySha256")
        if got is not None and set(got) != {want}:
            raise RuntimeError(f"receive {run['mode']}: bodies' SHA-256 {got} != {want}")


def check_sha256(runs: list[dict[str, Any]], data: Path) -> None:
    """The combined runs' SHA-256 (chained across the workers) must be the file's."""
    digests = {r["sha256"] for r in runs if r.get("sha256")}
    if not digests:
        return
    want = hashlib.sha256()
    with data.open("rb") as f:
        while block := f.read(16 * MIB):
            want.update(block)
    if digests != {want.hexdigest()}:
        raise RuntimeError(f"upload/combined SHA-256 {sorted(digests)} != {want.hexdigest()}")
    log(f"upload/combined SHA-256 matches hashlib's ({want.hexdigest()[:16]}…)")


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}  # fmt: skip


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per ``phase/mode``: median [min-max] over the repeats of each role's CPU-s per GiB,
    MB/s and load; for kernels, of each kernel's single-thread CPU-s per GiB."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(f"{run['phase']}/{run['mode']}", []).append(run)
    out: dict[str, Any] = {}
    for key, group in groups.items():
        row: dict[str, Any] = {"runs": len(group)}
        if "cpu_s_per_gib" in group[0]:
            roles = sorted({k for r in group for k in r["cpu_s_per_gib"]})
            row["cpu_s_per_gib"] = {k: spread([r["cpu_s_per_gib"].get(k, 0.0) for r in group])
                                    for k in roles}  # fmt: skip
            row["mb_s"] = spread([r["mb_s"] for r in group])
        if "gbps" in group[0]:
            row["gbps"] = {k: spread([r["gbps"][k] for r in group]) for k in group[0]["gbps"]}
            row["cpu_s_per_gib_single_thread"] = {
                k: spread([GIB / (r["gbps"][k] * 1e9) for r in group]) for k in group[0]["gbps"]
            }  # fmt: skip
        row["load_average"] = spread([r["load_average"] for r in group])
        out[key] = row
    return out


def measured_figures(summary: dict[str, Any]) -> dict[str, Any]:
    """The medians :func:`floors` takes, from :func:`summarize`'s output."""
    total = lambda key: summary[key]["cpu_s_per_gib"]["total_client"]["median"]  # noqa: E731
    kernels = summary["kernels/raw"]["cpu_s_per_gib_single_thread"]
    return {
        "read": total("read/slices"),
        "send": {k.split("/", 1)[1]: total(k) for k in summary if k.startswith("send/")},
        "receive": {k.split("/", 1)[1]: total(k) for k in summary if k.startswith("receive/")},
        "kernels": {k: kernels[k]["median"] for k in KERNELS},
        **({"hashfile_workers": {"cpu_s_per_gib": total("hashfile/workers"),
                                 "mb_s": summary["hashfile/workers"]["mb_s"]["median"]}}
           if "hashfile/workers" in summary else {}),
    }  # fmt: skip


# ------------------------------------------------------------------------------ the floors


def combined_floor(summary: dict[str, Any], target: float = 8.0) -> dict[str, Any] | None:
    """``upload/combined`` (the minimal correct upload run for real, all parts at once)
    beside the sum of the same parts measured alone in the same invocation (read + gear +
    BLAKE3 + SHA-256 + CRC-64 + send ``fileblob``: :func:`floors`' ``upload_min`` with the
    body mechanism the combined run uses) and the all-Chromium target. ``None`` without a
    combined run; no ``sum_of_parts`` unless read, kernels and send ``fileblob`` were run."""
    if "upload/combined" not in summary:
        return None
    row = summary["upload/combined"]
    total = row["cpu_s_per_gib"]["total_client"]
    out: dict[str, Any] = {
        "combined": total["median"], "combined_min": total["min"],
        "combined_max": total["max"], "mb_s": row["mb_s"]["median"],
        "per_role": {k: v["median"] for k, v in row["cpu_s_per_gib"].items()},
        "target": target, "within_target": total["median"] <= target,
    }  # fmt: skip
    if all(k in summary for k in ("read/slices", "kernels/raw", "send/fileblob")):
        k = summary["kernels/raw"]["cpu_s_per_gib_single_thread"]
        parts = {
            "read": summary["read/slices"]["cpu_s_per_gib"]["total_client"]["median"],
            "gear+blake3+sha256": sum(k[n]["median"] for n in ("gear_scan", "blake3_64k",
                                                               "sha256")),
            "crc64": k["crc64"]["median"],
            "send (fileblob)": summary["send/fileblob"]["cpu_s_per_gib"]["total_client"]["median"],
        }  # fmt: skip
        out["parts"] = {n: round(v, 3) for n, v in parts.items()}
        out["sum_of_parts"] = round(sum(parts.values()), 3)
        out["combined_over_sum"] = round(total["median"] - out["sum_of_parts"], 3)
    return out


def floors(m: dict[str, Any], *, float_fraction: float = 0.5, cores: int = 2,
           targets: dict[str, float] | None = None) -> dict[str, Any]:  # fmt: skip
    """Issue 20's targets against the measured floors. ``m`` (CPU-seconds per GiB):

    - ``read``, ``send[mode]``, ``receive[mode]``: all Chromium processes, bench/floor.py;
    - ``kernels[name]``: one thread, raw kernels (1 GiB / rate);
    - optional: ``server_upload`` / ``server_download`` (CPU-s per GiB of our server for
      xet.hub's upload / download), ``mb_s`` (``native_upload``, ``native_download``,
      ``hfjs_upload``, ``hfjs_download``, ``xetchunk_hash``: measured MB/s of the peers).

    ``float_fraction``: the share of the input that is float-like (compressed with BG4 + LZ4
    by the upload; the rest is random and stored raw after a failed LZ4 attempt).

    Floors (each a sum of parts measured alone, so no contention, no scheduling, no Python):

    - ``upload_min``: read + gear + BLAKE3 + SHA-256 + CRC-64 + the cheapest send mode — no
      compression attempt, no copy into an xorb body (a body made of File slices), the
      cheapest body mechanism even where it breaks the memory bound; a lower bound of any
      correct client in this browser (the grant's CRC-64 of the body is required);
    - ``upload_today``: read + gear + BLAKE3 + SHA-256 + xk_encode_records as the upload
      runs it (LZ4 attempt on the random share, BG4 + LZ4 on the float share, CRC included)
      + the ``hold`` send mode: the floor of today's design;
    - ``download_min``: the cheapest receive into one Blob read back to its end (``blob``:
      through the page, or ``respblob``: responses kept as Blobs and read once by workers)
      + BLAKE3 of every chunk (data stored raw: no decode at all); ``download_today``:
      receive ``blob`` + BLAKE3 + xk_decode_records of the records the upload writes (a copy
      for the raw share, BG4 + LZ4 for the float share);
    - ``hashfile``: read + gear + BLAKE3; with ``hashfile_workers`` (``cpu_s_per_gib``,
      ``mb_s``: that work run for real by the pool's workers, bench/floor.py's
      ``hashfile/workers``) the measured MB/s and ratio too.

    Wall time per GiB on ``cores`` cores is at least (Chromium's CPU + the server's) /
    ``cores``: the best MB/s any client with that floor reaches, hence the best ratios."""
    t = {"upload_chromium": 8.0, "download_chromium": 4.0, "upload_vs_native": 0.7,
         "upload_vs_hfjs": 3.0, "download_vs_hfjs": 4.0, "hashfile_vs_xetchunk": 3.0,
         **(targets or {})}  # fmt: skip
    k = m["kernels"]
    rnd = 1.0 - float_fraction
    hashes = k["gear_scan"] + k["blake3_64k"] + k["sha256"]
    send_min_mode = min(m["send"], key=m["send"].get)
    recv_min_mode = min((r for r in m["receive"] if r != "discard"), key=m["receive"].get)
    records = rnd * k["records_lz4_random"] + float_fraction * k["records_bg4_floats"]
    decode = rnd * k["decode_raw"] + float_fraction * k["decode_bg4_floats"]
    parts = {
        "upload_min": {"read": m["read"], "gear+blake3+sha256": hashes, "crc64": k["crc64"],
                       f"send ({send_min_mode})": m["send"][send_min_mode]},
        "upload_today": {"read": m["read"], "gear+blake3+sha256": hashes,
                         "records (lz4/bg4 attempt + crc)": records,
                         "send (hold)": m["send"].get("hold", m["send"][send_min_mode])},
        "download_min": {f"receive ({recv_min_mode})": m["receive"][recv_min_mode],
                         "blake3": k["blake3_64k"]},
        "download_today": {"receive (blob)": m["receive"]["blob"], "blake3": k["blake3_64k"],
                           "decode records": decode},
        "hashfile": {"read": m["read"], "gear+blake3": k["gear_scan"] + k["blake3_64k"]},
    }  # fmt: skip
    out: dict[str, Any] = {"cores": cores, "float_fraction": float_fraction, "targets": t}
    for name, p in parts.items():
        out[name] = {
            "parts": {n: round(v, 3) for n, v in p.items()},
            "chromium_cpu_s_per_gib": round(sum(p.values()), 3),
        }
    verdicts: dict[str, Any] = {}
    for name, target in (("upload", t["upload_chromium"]), ("download", t["download_chromium"])):
        lo = out[f"{name}_min"]["chromium_cpu_s_per_gib"]
        verdicts[f"{name}_chromium"] = {
            "target": target, "floor_min": lo,
            "floor_today": out[f"{name}_today"]["chromium_cpu_s_per_gib"],
            "reachable": lo <= target,
        }  # fmt: skip
    mb_s = m.get("mb_s", {})
    gib_mb = GIB / 1e6
    for name, server_key in (("upload", "server_upload"), ("download", "server_download")):
        if server_key not in m:
            continue
        for variant in ("min", "today"):
            cpu = out[f"{name}_{variant}"]["chromium_cpu_s_per_gib"] + m[server_key]
            wall = cpu / cores
            out[f"{name}_{variant}"]["with_server_cpu_s_per_gib"] = round(cpu, 3)
            out[f"{name}_{variant}"]["wall_s_per_gib_at_least"] = round(wall, 3)
            out[f"{name}_{variant}"]["best_mb_s"] = round(gib_mb / wall, 1)
        best = out[f"{name}_min"]["best_mb_s"]
        today = out[f"{name}_today"]["best_mb_s"]
        for peer, key in (("native", f"{name}_vs_native"), ("hfjs", f"{name}_vs_hfjs")):
            if key in t and f"{peer}_{name}" in mb_s:
                peer_mb_s = mb_s[f"{peer}_{name}"]
                ratio = best / peer_mb_s
                verdicts[key] = {"target": t[key], "best_ratio": round(ratio, 2),
                                 "best_ratio_today": round(today / peer_mb_s, 2),
                                 "peer_mb_s": peer_mb_s, "best_mb_s": best,
                                 "reachable": ratio >= t[key]}  # fmt: skip
    hf = out["hashfile"]
    wall = hf["chromium_cpu_s_per_gib"] / cores
    hf["wall_s_per_gib_at_least"] = round(wall, 3)
    hf["best_mb_s"] = round(gib_mb / wall, 1)
    if "xetchunk_hash" in mb_s:
        ratio = hf["best_mb_s"] / mb_s["xetchunk_hash"]
        verdicts["hashfile_vs_xetchunk"] = {
            "target": t["hashfile_vs_xetchunk"], "best_ratio": round(ratio, 2),
            "peer_mb_s": mb_s["xetchunk_hash"], "best_mb_s": hf["best_mb_s"],
            "reachable": ratio >= t["hashfile_vs_xetchunk"],
        }  # fmt: skip
        if "hashfile_workers" in m:  # the same work run for real in two workers, timed
            measured = m["hashfile_workers"]["mb_s"]
            verdicts["hashfile_vs_xetchunk"]["measured_mb_s"] = measured
            ratio = measured / mb_s["xetchunk_hash"]
            verdicts["hashfile_vs_xetchunk"]["measured_ratio"] = round(ratio, 2)
            # "reachable" is the arithmetic's (both cores fully busy); this, the timed run's
            target = t["hashfile_vs_xetchunk"]
            verdicts["hashfile_vs_xetchunk"]["reachable_measured"] = ratio >= target
    out["verdicts"] = verdicts
    return out


# ------------------------------------------------------------------------------ peers' figures


def _find(obj: Any, key: str) -> list[Any]:
    """Every value of ``key`` anywhere in a JSON document."""
    if isinstance(obj, dict):
        found = [obj[key]] if key in obj else []
        return found + [v for x in obj.values() for v in _find(x, key)]
    if isinstance(obj, list):
        return [v for x in obj for v in _find(x, key)]
    return []


def peer_figures(peers: list[dict[str, Any]], browsers: list[dict[str, Any]],
                 size_mib: int) -> dict[str, Any]:  # fmt: skip
    """Medians over every run of the given bench/peers.py and bench/browser.py outputs:
    server CPU-s per GiB under xet.hub's upload/download, and the peers' MB/s."""
    out: dict[str, Any] = {"mb_s": {}}
    rows = [s for p in peers for s in p.get("sizes", []) if s["size_mib"] == size_mib]
    if rows:
        xet = [r["cpu_s_per_gib"]["xet"] for r in rows]
        for op in ("upload", "download"):
            out[f"server_{op}"] = statistics.median(run["server"] for x in xet for run in x[op])
            for peer in ("native", "hfjs", "xet"):
                # each output holds a median over its runs: the median of those
                out["mb_s"][f"{peer}_{op}"] = round(
                    statistics.median(r[f"{peer}_{op}_mb_s"]["median"] for r in rows), 1
                )
    chunk = [v for b in browsers for v in _find(b, "xetchunk_wasm_mb_s")]
    ours = [v for b in browsers for v in _find(b, "chunk_hash_mb_s")]
    if chunk:
        out["mb_s"]["xetchunk_hash"] = round(statistics.median(chunk), 1)
        out["mb_s"]["xet_hash"] = round(statistics.median(ours), 1)
    return out


# ------------------------------------------------------------------------------ main


def table(summary: dict[str, Any], result: dict[str, Any]) -> str:
    roles = ("page", "workers", "renderer_other", "browser", "network", "total_client")
    lines = ["CPU-s per GiB, median [min-max]: " + ", ".join(roles) + ", MB/s"]
    for key, row in summary.items():
        if "cpu_s_per_gib" in row:
            cells = [f"{row['cpu_s_per_gib'][r]['median']:.2f}" if r in row["cpu_s_per_gib"]
                     else "-" for r in roles]  # fmt: skip
            tot = row["cpu_s_per_gib"]["total_client"]
            lines.append(
                f"{key:22} "
                + " ".join(f"{c:>6}" for c in cells)
                + f"  [{tot['min']:.2f}-{tot['max']:.2f}]  {row['mb_s']['median']:.0f}"
            )
    for key, row in summary.items():
        if "gbps" in row:
            lines.append(f"{key}: " + ", ".join(
                f"{k} {v['median']:.2f}" for k, v in row["cpu_s_per_gib_single_thread"].items())
                + " (one thread, CPU-s per GiB)")  # fmt: skip
    for name, v in result.get("verdicts", {}).items():
        lines.append(f"{name}: {json.dumps(v)}")
    if "combined" in result:
        lines.append(f"upload/combined vs parts alone: {json.dumps(result['combined'])}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0, help="read workers (0: cores)")
    parser.add_argument("--send-modes", default=",".join(SEND_MODES))
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help="the page's parts to run (the floors need all but combined)",
    )
    parser.add_argument(
        "--peers",
        nargs="*",
        default=[],
        type=Path,
        help="bench/peers.py --json outputs (server CPU, peers' MB/s)",
    )
    parser.add_argument(
        "--browser",
        nargs="*",
        default=[],
        type=Path,
        help="bench/browser.py --json outputs (xetchunk-wasm MB/s)",
    )
    parser.add_argument(
        "--from",
        dest="from_",
        nargs="*",
        default=[],
        type=Path,
        help="no measuring: the runs of these earlier --json outputs, merged",
    )
    parser.add_argument(
        "--combined-bodies",
        default="records",
        help="upload/combined bodies: records (headers + File slices), copy (records copied "
        "into worker Blobs), slices (diagnostic, no headers)",
    )
    parser.add_argument(
        "--receive-modes",
        default="discard,blob,respblob",
        help="receive modes: discard, blob, respblob, wblob<KiB> (each body copied into a "
        "32 MiB segment of its worker's wasm memory, made into Blobs of at most <KiB> there), "
        "wsplit<KiB> (one Blob per segment, of <KiB>-byte views), wstream (each body a Blob "
        "made by new Response(stream).blob() from views of a ring of wasm memory)",
    )
    parser.add_argument(
        "--worker-spin-us",
        type=int,
        default=0,
        help="w* receive modes: each worker busy this long per MiB received (a decode's CPU)",
    )
    parser.add_argument(
        "--receive-workers",
        type=int,
        default=0,
        help="w* receive modes: the bodies in flight read by this many workers (0: one each)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    args.receive_modes = args.receive_modes.split(",")
    for mode in args.receive_modes:
        if mode not in ("discard", "blob", "respblob", "wstream") and not re.fullmatch(
            r"(wblob|wsplit)[1-9][0-9]*", mode
        ):
            parser.error(f"unknown receive mode {mode}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    modes = args.send_modes.split(",")
    unknown = set(modes) - set(SEND_MODES)
    if unknown:
        parser.error(f"unknown send modes: {', '.join(sorted(unknown))}")
    args.send_modes = modes
    parts = args.parts.split(",")
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    args.parts = parts
    args.combined_bodies = args.combined_bodies.split(",")
    if set(args.combined_bodies) - {"records", "copy", "slices"}:
        parser.error("--combined-bodies: records, copy and/or slices")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from browser import bench_file

    load0 = os.getloadavg()[0]
    started = time.time()
    if args.from_:
        earlier = [json.loads(p.read_text()) for p in args.from_]
        page = {"size": earlier[0]["size"], "workers": earlier[0]["workers"],
                "userAgent": earlier[0]["user_agent"],
                "runs": [r for e in earlier for r in e["runs"]]}  # fmt: skip
        config = earlier[0]["config"]
    else:
        data = bench_file(args.size_mib)
        config = {"dataUrl": f"/_data/{data.name}", "repeat": args.repeat,
                  "workers": args.workers, "blockMib": 16, "bodyMib": 64, "inflight": 4,
                  "getMib": 64, "sendModes": args.send_modes, "kernelMib": 64,
                  "kernelRepeat": 3, "webcryptoMib": 256, "settleMs": 3000,
                  "gapMs": 1500, "parts": args.parts,
                  "combinedBodies": args.combined_bodies,
                  "receiveModes": args.receive_modes,
                  "workerSpinUs": args.worker_spin_us,
                  "receiveWorkers": args.receive_workers}  # fmt: skip
        log(f"load average {load0:.2f}; {args.size_mib} MiB, {args.repeat} runs")
        page = run_page(config, data)
        check_sha256(page["runs"], data)
        check_bodies(page["runs"], config["getMib"])
    summary = summarize(page["runs"])
    complete = all(k in summary for k in ("read/slices", "kernels/raw", "receive/blob")) and any(
        k.startswith("send/") for k in summary
    )
    measured = measured_figures(summary) if complete else {}
    peers = peer_figures(
        [json.loads(p.read_text()) for p in args.peers],
        [json.loads(b.read_text()) for b in args.browser],
        args.size_mib,
    )
    measured.update(peers)
    result = floors(measured, cores=os.cpu_count() or 2) if complete else {}
    combined = combined_floor(summary)
    if combined is not None:
        result["combined"] = combined
    report = {
        "size": page["size"],
        "workers": page["workers"],
        "user_agent": page["userAgent"],
        "load_average_at_start": load0,
        "load_average_at_end": os.getloadavg()[0],
        "seconds": round(time.time() - started, 1),
        "config": config,
        "summary": summary,
        "measured": measured,
        "floors": result,
        "runs": page["runs"],
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(table(summary, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
