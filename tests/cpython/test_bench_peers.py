"""bench/peers.py's per-run CPU rows: a download's row also gives the part of its span spent
reading the client's Blob back (the bench's drain, the same for every client). Nothing here
is timed: the sampler is a stand-in."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from tests.cpython._bench_modules import load_bench

GIB = 1 << 30


@pytest.fixture(scope="module")
def peers_bench() -> ModuleType:
    return load_bench("peers")


class FakeSampler:
    """The page uses 1 core and the browser process half of one, all the time."""

    def between(self, t0: float, t1: float) -> dict[str, float]:
        return {"page": t1 - t0, "browser": (t1 - t0) / 2}

    def load_between(self, t0: float, t1: float) -> float:
        return 1.0

    def timeline(self, t0: float, t1: float, step: float) -> list[dict[str, float]]:
        return []


def test_a_download_row_splits_the_call_from_the_drain(peers_bench: ModuleType) -> None:
    run: dict[str, Any] = {"client": "xet", "run": 0, "upload": 4.0, "download": 3.0,
                           "uploadSpan": [100.0, 104.0], "downloadSpan": [110.0, 113.0],
                           "drainAt": 112.0}  # fmt: skip
    page = {"size": GIB, "runs": [run]}
    rows = peers_bench.cpu_per_gib(FakeSampler(), page, [], 1024)
    down = rows["xet"]["download"][0]
    assert down["page"] == pytest.approx(3.0)  # the whole span, as before
    assert down["drain_at"] == 112.0
    assert down["drain_s"] == pytest.approx(1.0)
    assert down["drain"] == {"page": 1.0, "browser": 0.5, "total_client": 1.5}
    assert "drain" not in rows["xet"]["upload"][0]
