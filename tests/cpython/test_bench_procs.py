"""bench/_procs.py, the per-process CPU sampler of the benchmarks, against the kernel's own
accounting of a child process (``getrusage``), and its Chromium process classification."""

from __future__ import annotations

import math
import resource
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from tests.cpython._bench_modules import load_bench

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

#: Busy for 0.6 CPU-seconds (whatever the load), then idle so a last sample sees the total.
BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\n" \
       "time.sleep(0.6)"  # fmt: skip


def _procs() -> ModuleType:
    return load_bench("_procs")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_sampler_matches_getrusage_of_a_busy_child() -> None:
    procs = _procs()
    before = _children_cpu()
    child = subprocess.Popen([sys.executable, "-c", BUSY])
    with procs.CpuSampler(interval=0.05) as sampler:
        sampler.watch(child.pid, "server:busy")
        t0 = time.time()
        child.wait(timeout=120)
        t1 = time.time()
    truth = _children_cpu() - before  # start-up included: the sampler sees it too
    measured = sampler.between(t0 - 1, t1 + 1)["server:busy"]
    assert truth >= 0.6
    assert abs(measured - truth) <= 0.1, (measured, truth)
    # half the span measures less than the whole, never more
    assert 0 <= sampler.between(t0, (t0 + t1) / 2)["server:busy"] <= measured + 1e-9
    load = sampler.load_between(t0, t1)
    assert load >= 0
    # the timeline's bins (cores busy) add up to the whole span's CPU-seconds; the busy child
    # keeps one core busy in some bin, and the machine is at least as busy as the child
    rows = sampler.timeline(t0, t1, 0.25)
    assert len(rows) == math.ceil((t1 - t0) / 0.25 - 1e-6)
    assert rows[0]["t"] == 0.0 and rows[1]["t"] == 0.25
    widths = [min(0.25, (t1 - t0) - r["t"]) for r in rows]
    binned = sum(r.get("server:busy", 0.0) * w for r, w in zip(rows, widths, strict=True))
    assert abs(binned - sampler.between(t0, t1)["server:busy"]) <= 0.05 * len(rows)
    busiest = max(rows, key=lambda r: r.get("server:busy", 0.0))
    assert busiest["server:busy"] >= 0.5
    assert busiest["machine:busy"] >= busiest["server:busy"] - 0.1


def _wait_for_exec(pid: int, marker: str, timeout: float = 30.0) -> None:
    """Until ``/proc/<pid>/cmdline`` holds ``marker``: a child from ``Popen`` shows the
    parent's command line until its ``exec`` (seen under load as role "browser")."""
    deadline = time.monotonic() + timeout
    while marker.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, f"process {pid} did not exec within {timeout} s"
        time.sleep(0.01)


def test_chromium_roles_from_the_command_line() -> None:
    procs = _procs()
    sleeper = "import time; time.sleep(30)"
    argvs = {
        "network": ["--type=utility", "--utility-sub-type=network.mojom.NetworkService"],
        "utility": ["--type=utility", "--utility-sub-type=storage.mojom.StorageService"],
        "renderer": ["--type=renderer"],
        "gpu": ["--type=gpu-process"],
        "browser": ["--headless"],
    }
    children = {role: subprocess.Popen([sys.executable, "-c", sleeper, *argv])
                for role, argv in argvs.items()}  # fmt: skip
    try:
        for child in children.values():  # until it ran exec: before, /proc shows our own argv
            _wait_for_exec(child.pid, sleeper)
        for role, child in children.items():
            assert procs.chromium_role(child.pid) == role
    finally:
        for child in children.values():
            child.kill()
            child.wait()
    assert procs.chromium_role(children["gpu"].pid) == "gone"


def test_summary_keys_and_per_gib() -> None:
    procs = _procs()
    cpu = {"page": 2.0, "workers": 1.0, "browser": 0.5, "network": 0.25, "renderer_other": 0.25,
           "server:cas": 3.0}  # fmt: skip
    summary = procs.chromium_summary(cpu, cpu["server:cas"])
    assert summary["total_client"] == 4.0
    assert summary["server"] == 3.0
    assert procs.per_gib(summary, 512 << 20)["total_client"] == 8.0


def test_a_zygote_child_that_becomes_a_renderer_is_reclassified(monkeypatch) -> None:
    """A renderer forked by Chromium's zygote shows the zygote's command line at first; a
    scan in that window must not pin it as "zygote" (its page and workers would read 0)."""
    procs = _procs()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        seen = iter(["zygote", "renderer"])
        monkeypatch.setattr(procs, "chromium_role", lambda pid: next(seen))
        sampler = procs.CpuSampler().watch_chromium(child.pid)
        sampler._scan_tree()
        assert sampler._tree == {child.pid: "zygote"}
        sampler._scan_tree()
        assert sampler._tree == {child.pid: "renderer"}
        monkeypatch.setattr(procs, "chromium_role", lambda pid: "browser")
        sampler._scan_tree()  # any other role is kept: the command line is read once
        assert sampler._tree == {child.pid: "renderer"}
    finally:
        child.kill()
        child.wait()
