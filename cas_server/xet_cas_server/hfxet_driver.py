"""Drive hf_xet (the native reference client) in a child process, for tests and benchmarks.

Each call runs ``python -m xet_cas_server.hfxet_driver SPEC_JSON`` in its own process, so it
gets its own environment (``HF_HOME`` = shard cache, ``HF_XET_*`` knobs), can be killed, and
never shares hf_xet's runtime threads with pytest. The child prints one JSON line.

Spec fields: ``op`` ("upload" | "download" | "stream"), ``endpoint``, ``token``, ``exp``,
optional ``refresh_url`` + ``refresh_headers`` (hf_xet's token_refresh_url mode), ``config``
(``XetConfig`` dotted keys, e.g. ``{"client.enable_multirange_fetching": true}``) and:

* upload: ``files`` = list of paths, uploaded in one commit → ``files`` with hash/size/sha256
  and the commit's dedup metrics;
* download: ``items`` = list of ``{"hash", "size", "dest"}`` in one download group;
* stream: ``hash``, ``size``, optional ``start``/``end`` (end exclusive), ``dest`` → the bytes of
  that range written to ``dest`` through ``XetDownloadStreamGroup.download_stream``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: Dedup metrics of a commit reported by the upload op.
METRICS = (
    "total_bytes",
    "new_bytes",
    "deduped_bytes",
    "deduped_bytes_by_global_dedup",
    "deduped_chunks_by_global_dedup",
    "xorb_bytes_uploaded",
    "shard_bytes_uploaded",
)


class DriverError(RuntimeError):
    """hf_xet failed (the message carries its error text and the child's stderr tail)."""


def _session(spec: dict[str, Any]) -> Any:
    import hf_xet

    config = hf_xet.XetConfig()
    if spec.get("config"):
        config = config.with_config(spec["config"])
    return hf_xet.XetSession(config)


def _connect_args(spec: dict[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {"endpoint": spec.get("endpoint")}
    if spec.get("token"):
        args["token"] = spec["token"]
        args["token_expiry_unix_secs"] = int(spec["exp"])
    if spec.get("refresh_url"):
        args["token_refresh_url"] = spec["refresh_url"]
        args["token_refresh_headers"] = spec.get("refresh_headers") or {}
    return args


def _metrics(m: Any) -> dict[str, int]:
    return {n: int(getattr(m, n)) for n in METRICS}


def _upload(spec: dict[str, Any]) -> dict[str, Any]:
    session = _session(spec)
    commit = session.new_upload_commit(**_connect_args(spec))
    try:
        handles = [(p, commit.start_upload_file(p)) for p in spec["files"]]
        report = commit.wait_to_finish()
    except BaseException:
        commit.abort()
        raise
    out = []
    for path, h in handles:
        info = h.result().xet_info
        out.append({"path": path, "hash": info.hash, "size": info.file_size, "sha256": info.sha256})
    return {"files": out, "dedup": _metrics(report.dedup_metrics)}


def _download(spec: dict[str, Any]) -> dict[str, Any]:
    import hf_xet

    session = _session(spec)
    with session.new_file_download_group(**_connect_args(spec)) as group:
        for item in spec["items"]:
            group.start_download_file(hf_xet.XetFileInfo(item["hash"], item["size"]), item["dest"])
    return {"downloaded": len(spec["items"])}


def _stream(spec: dict[str, Any]) -> dict[str, Any]:
    import hf_xet

    session = _session(spec)
    group = session.new_download_stream_group(**_connect_args(spec))
    info = hf_xet.XetFileInfo(spec["hash"], spec["size"])
    n = 0
    with open(spec["dest"], "wb") as f:
        for piece in group.download_stream(info, start=spec.get("start"), end=spec.get("end")):
            f.write(piece)
            n += len(piece)
    group.finish()
    return {"bytes": n}


def child_main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    started = time.monotonic()
    try:
        result = {"upload": _upload, "download": _download, "stream": _stream}[spec["op"]](spec)
    except Exception as e:
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}), flush=True)
        return 1
    result.update(ok=True, seconds=round(time.monotonic() - started, 3))
    print(json.dumps(result), flush=True)
    return 0


def spawn(
    spec: dict[str, Any], *, hf_home: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start the child without waiting (crash tests kill the server meanwhile)."""
    child_env = {**os.environ, "HF_HOME": str(hf_home), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "xet_cas_server.hfxet_driver", json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env,
    )


def collect(proc: subprocess.Popen[str], timeout: float = 600) -> dict[str, Any]:
    """Wait for a spawned child; returns its JSON, or raises DriverError."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise DriverError(
            f"hf_xet driver timed out after {timeout}s; stderr: {stderr[-2000:]}"
        ) from None
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    result = (
        json.loads(lines[-1])
        if lines
        else {"ok": False, "error": f"no output (rc {proc.returncode})"}
    )
    if not result.get("ok"):
        raise DriverError(f"{result.get('error')}; stderr: {stderr[-2000:]}")
    return result


def run(
    spec: dict[str, Any], *, hf_home: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> dict[str, Any]:
    return collect(spawn(spec, hf_home=hf_home, env=env), timeout)


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
