"""Per-thread minor page faults and user/system CPU of a process tree, over timed spans.

    python3 bench/thread_faults.py sample PID OUT.jsonl     # until PID exits, every 0.25 s
    python3 bench/thread_faults.py spans OUT.jsonl PEERS.json|FLOOR.json

``sample`` records, for every thread of PID and its descendants, the counters of
``/proc/<pid>/task/<tid>/stat`` (minflt, utime, stime) as one JSON line per sample. ``spans``
prints, for each ``xet.hub`` download of a ``bench/peers.py --json`` result (its
``cpu_s_per_gib.xet.download[i].span``), the change per GiB of each counter summed by process
type (Chromium's ``--type``) and thread name (likewise for each run of a
``bench/floor.py --json`` result) — where a download's system time and fresh
pages go (docs/browser.md, "Downloads: where the CPU goes"). Typical use, in the bench's lock:

    flock /tmp/xet-bench.lock sh -c '.venv/bin/python bench/peers.py ... --json > p.json &
        python3 bench/thread_faults.py sample $! t.jsonl; wait'
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time

from _procs import TICK, chromium_role, descends_from, parent_pids


def _tree(root: int) -> list[int]:
    """``root`` and every process below it (its Chromium children and their children)."""
    parents = parent_pids()
    return [pid for pid in parents if descends_from(pid, root, parents)]


def sample(root: int, out: str, every: float = 0.25) -> None:
    roles: dict[int, str] = {}
    with open(out, "w") as f:
        while os.path.exists(f"/proc/{root}"):
            rows = []
            for pid in _tree(root):
                try:
                    tids = os.listdir(f"/proc/{pid}/task")
                except OSError:
                    continue
                for tid in tids:
                    try:
                        with open(f"/proc/{pid}/task/{tid}/stat") as s:
                            stat = s.read()
                    except OSError:
                        continue
                    name = stat[stat.index("(") + 1 : stat.rindex(")")]
                    x = stat[stat.rindex(")") + 2 :].split()
                    role = roles.get(pid) or roles.setdefault(pid, chromium_role(pid))
                    rows.append([pid, int(tid), role, name, int(x[7]), int(x[11]),
                                 int(x[12])])  # fmt: skip
            f.write(json.dumps([time.time(), rows]) + "\n")
            f.flush()
            time.sleep(every)


def _timed_spans(result: dict) -> list[tuple[str, float, tuple[float, float]]]:
    """(label, GiB, span) of each download of a bench/peers.py ``--json`` result, or of each
    run of a bench/floor.py ``--json`` result."""
    if "sizes" in result:
        return [(f"download {i}", size["size_mib"] / 1024, tuple(run["span"]))
                for size in result["sizes"]
                for i, run in enumerate(size["cpu_s_per_gib"]["xet"]["download"])]  # fmt: skip
    return [(f"{run['phase']}/{run['mode']} {run['rep']}", run["bytes"] / (1 << 30),
             tuple(run["span"])) for run in result["runs"] if run["bytes"]]  # fmt: skip


def spans(out: str, peers: str) -> None:
    with open(out) as f:
        samples = [json.loads(line) for line in f]
    with open(peers) as f:
        result = json.load(f)
    for label, gib, (start, end) in _timed_spans(result):
        before = max((s for s in samples if s[0] <= start), key=lambda s: s[0])
        after = min((s for s in samples if s[0] >= end), key=lambda s: s[0])
        base = {(r[0], r[1]): r for r in before[1]}
        totals: dict[tuple[str, str], list[int]] = collections.defaultdict(lambda: [0, 0, 0])
        for r in after[1]:
            b = base.get((r[0], r[1]), [0] * 7)
            t = totals[(r[2], r[3].rstrip("0123456789"))]
            for k in range(3):
                t[k] += r[4 + k] - b[4 + k]
        sampled = after[0] - before[0]
        print(f"{label}: {end - start:.2f} s (sampled {sampled:.2f} s), per GiB:")
        for (kind, name), (faults, user, system) in sorted(
            totals.items(), key=lambda kv: -(kv[1][1] + kv[1][2])
        ):
            if user + system >= 2 or faults > 2000:
                print(f"  {kind:12s} {name:24s} minflt {faults / gib:9.0f}  user "
                      f"{user / TICK / gib:5.2f}  sys {system / TICK / gib:5.2f}")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "sample":
        sample(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "spans":
        spans(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
