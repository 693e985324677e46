"""bench/thread_faults.py: which spans ``spans`` reports, from a bench/peers.py or a
bench/floor.py ``--json`` result, and the per-GiB sums it prints from the samples."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.cpython._bench_modules import load_bench


def _thread_faults() -> ModuleType:
    return load_bench("thread_faults")


PEERS = {"sizes": [{"size_mib": 512, "cpu_s_per_gib": {"xet": {"download": [
    {"span": [10.0, 12.0]}, {"span": [20.0, 21.5]}]}}}]}  # fmt: skip
FLOOR = {"runs": [
    {"phase": "receive", "mode": "wblob512", "rep": 0, "bytes": 1 << 30, "span": [1.0, 3.0]},
    {"phase": "kernels", "mode": "raw", "rep": 0, "bytes": 0, "span": [4.0, 5.0]},
]}  # fmt: skip


def test_spans_of_peers_and_floor_results() -> None:
    tf = _thread_faults()
    assert tf._timed_spans(PEERS) == [("download 0", 0.5, (10.0, 12.0)),
                                      ("download 1", 0.5, (20.0, 21.5))]  # fmt: skip
    # floor runs without bytes (kernels) have no per-GiB figures
    assert tf._timed_spans(FLOOR) == [("receive/wblob512 0", 1.0, (1.0, 3.0))]


def test_spans_prints_the_change_per_gib(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tf = _thread_faults()
    row = lambda faults: [7, 8, "renderer", "DedicatedWorker", faults, 0, 0]  # noqa: E731
    samples = tmp_path / "t.jsonl"
    samples.write_text("".join(json.dumps(s) + "\n" for s in (
        [0.5, [row(1000)]], [3.2, [row(1000 + 300000)]])))  # fmt: skip
    result = tmp_path / "floor.json"
    result.write_text(json.dumps(FLOOR))
    tf.spans(str(samples), str(result))
    out = capsys.readouterr().out
    assert "receive/wblob512 0: 2.00 s" in out
    assert "DedicatedWorker" in out and "minflt    300000" in out
