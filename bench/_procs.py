"""CPU-seconds per process (and per Chromium thread kind) from ``/proc``, for the benchmarks.

A :class:`CpuSampler` thread reads the cumulative user + system time of the processes it
watches every ``interval`` seconds: a Chromium's whole process tree (each process classified
by its ``--type=``; inside a renderer, the main thread — the page — and its
``DedicatedWorker`` threads apart), and single processes given a role (a CAS server).
:meth:`CpuSampler.between` then gives the CPU-seconds each role used between two wall-clock
times (``time.time()``, or a page's ``performance.timeOrigin + performance.now()``), the
cumulative counters interpolated linearly between the samples around each end. A process or
thread that exits keeps its last count (its CPU is not lost; at most one interval of it is).

Roles of a Chromium tree: ``page`` (renderer main thread), ``workers`` (renderer threads
whose name starts with ``DedicatedWorker``, ``Worker`` or ``SharedWorker``),
``renderer_other`` (the renderer's other threads: compositor, V8 platform and IO threads,
exited threads), ``browser`` (the process without ``--type``), ``network`` (the utility
process running the network service), ``gpu``, ``utility`` (other utility processes, e.g.
storage), ``zygote``. Linux only (``/proc``); the clock tick comes from ``sysconf``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
GIB = 1 << 30

#: Roles of a Chromium process tree, in the order tables print them.
CHROMIUM_ROLES = ("page", "workers", "renderer_other", "browser", "network", "gpu", "utility",
                  "zygote")  # fmt: skip
_WORKER_THREADS = ("DedicatedWorker", "DedicatedWorke", "Worker", "SharedWorker")


def _stat(path: str) -> tuple[str, int, int] | None:
    """(comm, ppid, utime + stime ticks) of a /proc/<pid>[/task/<tid>]/stat, None if gone."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    head, _, rest = raw.rpartition(b")")
    fields = rest.split()
    # after the comm: state ppid ... utime is field 14 of the whole line (index 11 here)
    return (
        head.partition(b"(")[2].decode(errors="replace"),
        int(fields[1]),
        (int(fields[11]) + int(fields[12])),
    )


def parent_pids() -> dict[int, int]:
    """``{pid: parent pid}`` of every process now running (from /proc; gone ones skipped)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(f"/proc/{entry}/stat")
            if st is not None:
                parents[int(entry)] = st[1]
    return parents


def descends_from(pid: int, root: int, parents: dict[int, int]) -> bool:
    """Whether ``pid`` is ``root`` or below it in ``parents`` (see :func:`parent_pids`)."""
    for _ in range(64):
        if pid == root:
            return True
        pid = parents.get(pid, 0)
        if pid <= 1:
            return False
    return False


def chromium_role(pid: int) -> str:
    """The role of one Chromium process from its command line."""
    try:
        # Chromium's children rewrite their title: one NUL-terminated string, space-separated
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
    except OSError:
        return "gone"
    kind = next((a[7:] for a in argv if a.startswith(b"--type=")), b"")
    if not kind:
        return "browser"
    if kind == b"renderer":
        return "renderer"
    if kind == b"gpu-process":
        return "gpu"
    if kind == b"zygote":
        return "zygote"
    if kind == b"utility":
        sub = next((a for a in argv if a.startswith(b"--utility-sub-type=")), b"")
        return "network" if b"network" in sub.lower() else "utility"
    return kind.decode(errors="replace")


class CpuSampler:
    """Cumulative CPU per role, sampled in a background thread (see the module docstring)."""

    def __init__(self, interval: float = 0.2, rescan: float = 1.0) -> None:
        self.interval = interval
        self.rescan = rescan
        self._roots: list[int] = []
        self._single: dict[int, str] = {}
        self._tree: dict[int, str] = {}  # pid -> role, Chromium tree members
        self._last: dict[tuple[int, int, str], int] = {}  # (pid, tid, role) -> ticks
        self._samples: list[tuple[float, dict[str, int]]] = []
        self._loads: list[tuple[float, float]] = []  # (time, 1-min load average)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cpu-sampler")
        self._last_scan = 0.0

    # ------------------------------------------------------------------ configuration

    def watch_chromium(self, root_pid: int) -> CpuSampler:
        """Watch a Chromium (its browser process's pid) and all its descendants."""
        with self._lock:
            self._roots.append(root_pid)
            self._last_scan = 0.0
        return self

    def watch(self, pid: int, role: str) -> CpuSampler:
        """Watch one process (all its threads, as one figure) under ``role``."""
        with self._lock:
            self._single[pid] = role
        return self

    def start(self) -> CpuSampler:
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Take a last sample and stop (idempotent)."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(timeout=5)
            self._sample()

    def __enter__(self) -> CpuSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ sampling

    def _scan_tree(self) -> None:
        if not self._roots:
            return
        parents = parent_pids()
        tree: dict[int, str] = {}
        for pid in parents:
            if any(descends_from(pid, root, parents) for root in self._roots):
                known = self._tree.get(pid)
                # a renderer forked by the zygote shows the zygote's command line until it
                # rewrites its title: a "zygote" seen once is looked at again at every scan
                # (before, a renderer caught that early stayed "zygote": page and workers 0)
                tree[pid] = known if known not in (None, "zygote") else chromium_role(pid)
        self._tree = tree

    def _sample(self) -> None:
        with self._lock:
            now = time.time()
            if now - self._last_scan >= self.rescan:
                self._scan_tree()
                self._last_scan = now
            last = self._last
            for pid, role in self._single.items():
                st = _stat(f"/proc/{pid}/stat")
                if st is not None:
                    last[(pid, 0, role)] = st[2]
            for pid, role in self._tree.items():
                st = _stat(f"/proc/{pid}/stat")
                if st is None:
                    continue
                if role != "renderer":
                    last[(pid, 0, role)] = st[2]
                    continue
                # a renderer: main thread, workers, and the rest (whole process minus those,
                # so exited threads stay counted in the process total)
                named = 0
                with contextlib.suppress(OSError):
                    for tid_s in os.listdir(f"/proc/{pid}/task"):
                        tid = int(tid_s)
                        tst = _stat(f"/proc/{pid}/task/{tid}/stat")
                        if tst is None:
                            continue
                        if tid == pid:
                            last[(pid, tid, "page")] = tst[2]
                        elif tst[0].startswith(_WORKER_THREADS):
                            last[(pid, tid, "workers")] = tst[2]
                    named = sum(v for (p, _t, r), v in last.items()
                                if p == pid and r in ("page", "workers"))  # fmt: skip
                last[(pid, 0, "renderer_other")] = max(0, st[2] - named)
            sums: dict[str, int] = {}
            for (_pid, _tid, role), ticks in last.items():
                sums[role] = sums.get(role, 0) + ticks
            busy = _machine_busy()
            if busy is not None:  # every process on the machine, ours or not (a timeline's
                sums["machine:busy"] = busy  # idle cores); ":" keeps it out of total_client
            self._samples.append((time.time(), sums))
            self._loads.append((self._samples[-1][0], os.getloadavg()[0]))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    # ------------------------------------------------------------------ queries

    def _at(self, t: float) -> dict[str, float]:
        """Cumulative ticks per role at wall time ``t`` (linear between samples)."""
        samples = self._samples
        if not samples:
            return {}
        if t <= samples[0][0]:
            return {k: float(v) for k, v in samples[0][1].items()}
        for (ta, a), (tb, b) in itertools.pairwise(samples):
            if ta <= t <= tb:
                f = (t - ta) / (tb - ta) if tb > ta else 1.0
                return {k: a.get(k, 0) + f * (b.get(k, 0) - a.get(k, 0)) for k in b}
        return {k: float(v) for k, v in samples[-1][1].items()}

    def between(self, t0: float, t1: float) -> dict[str, float]:
        """CPU-seconds per role between wall times ``t0`` and ``t1``."""
        with self._lock:
            a, b = self._at(t0), self._at(t1)
        return {k: (b.get(k, 0.0) - a.get(k, 0.0)) / TICK for k in sorted(set(a) | set(b))}

    def timeline(self, t0: float, t1: float, step: float = 0.5) -> list[dict[str, float]]:
        """Cores busy per role in consecutive ``step``-second bins from ``t0`` to ``t1`` (the
        last bin may be shorter): where in a run the cores sat idle (``machine:busy`` is
        every process on the machine, from ``/proc/stat``)."""
        rows: list[dict[str, float]] = []
        a = t0
        while a < t1 - 1e-6:
            b = min(t1, a + step)
            cpu = self.between(a, b)
            row = {k: round(v / (b - a), 2) for k, v in cpu.items()}
            row["t"] = round(a - t0, 2)
            rows.append(row)
            a = b
        return rows

    def load_between(self, t0: float, t1: float) -> float:
        """The 1-minute load average, averaged over the samples between ``t0`` and ``t1``."""
        with self._lock:
            inside = [load for t, load in self._loads if t0 <= t <= t1]
            if not inside and self._loads:  # a span shorter than the interval: the nearest
                inside = [min(self._loads, key=lambda s: abs(s[0] - t1))[1]]
        return round(sum(inside) / len(inside), 2) if inside else float("nan")


def _machine_busy() -> int | None:
    """Busy ticks of all CPUs since boot (``/proc/stat``: every column but idle and iowait)."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != b"cpu":
        return None
    ticks = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(ticks) - ticks[3] - ticks[4]


def per_gib(cpu_s: dict[str, float], size: int) -> dict[str, float]:
    """CPU-seconds per GiB of ``size`` bytes, rounded for a JSON report."""
    return {k: round(v * GIB / size, 3) for k, v in cpu_s.items()}


def chromium_summary(cpu_s: dict[str, float], server_s: float) -> dict[str, float]:
    """The issue's keys (``page``, ``workers``, ``browser``, ``network``, ``server``,
    ``total_client``: every Chromium process) plus the other Chromium roles seen."""
    out = {role: cpu_s.get(role, 0.0) for role in CHROMIUM_ROLES if role in cpu_s}
    for key in ("page", "workers", "browser", "network"):
        out.setdefault(key, 0.0)
    out["server"] = server_s
    # every Chromium role, also kinds not listed above; single processes are "<role>:<name>"
    out["total_client"] = sum(v for k, v in cpu_s.items() if ":" not in k)
    return out


__all__ = ["CHROMIUM_ROLES", "GIB", "CpuSampler", "chromium_role", "chromium_summary", "per_gib"]
