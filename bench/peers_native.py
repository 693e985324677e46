"""The native anchor of bench/peers.py, run in a child process: huggingface_hub (with hf_xet)
``upload_file`` then ``hf_hub_download`` of one file, timed inside this process (imports and
start-up excluded). The environment (HF_ENDPOINT on a local server, HF_TOKEN, HF_HOME) comes
from the parent; prints one JSON object."""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def _cpu() -> float:
    """CPU-seconds of this whole process so far (every thread: hf_xet's runtime too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    from huggingface_hub import HfApi, constants, hf_hub_download

    spec = json.loads(sys.argv[1])
    endpoint = os.environ["HF_ENDPOINT"]
    if endpoint != constants.ENDPOINT or not endpoint.startswith("http://127.0.0.1:"):
        raise SystemExit(f"huggingface_hub would talk to {constants.ENDPOINT}, not {endpoint}")
    api = HfApi()
    out = {}
    for step in spec["steps"]:  # [{"repo", "path", "create", "download"}]
        if step.get("create"):
            api.create_repo(step["repo"], exist_ok=True)
        # wall-clock spans (time.time()) let the parent find the server's CPU in them
        span, cpu, started = [time.time()], _cpu(), time.perf_counter()
        api.upload_file(
            path_or_fileobj=step["path"], path_in_repo="model.bin", repo_id=step["repo"]
        )
        result = {"upload": time.perf_counter() - started, "upload_cpu_s": _cpu() - cpu,
                  "upload_span": [*span, time.time()]}  # fmt: skip
        if step.get("download"):
            span, cpu, started = [time.time()], _cpu(), time.perf_counter()
            hf_hub_download(step["repo"], "model.bin")
            result["download"] = time.perf_counter() - started
            result["download_cpu_s"] = _cpu() - cpu
            result["download_span"] = [*span, time.time()]
        out[step["name"]] = result
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
