"""bench/browser.py's float16 corpus (issue 20 measures on it): the generator must give
float16 weights of the stated spread, reproducibly, without per-value Python."""

from __future__ import annotations

import statistics
import struct
from types import ModuleType

import pytest

from tests.cpython._bench_modules import load_bench


@pytest.fixture(scope="module")
def browser_bench() -> ModuleType:
    return load_bench("browser")


@pytest.mark.parametrize("sigma", [0.008, 0.02, 0.1])
def test_float16_weights_have_the_stated_spread(browser_bench: ModuleType, sigma: float) -> None:
    data = browser_bench._float16_like(1 << 20, sigma, 7)
    assert len(data) == 1 << 20
    values = [v for (v,) in struct.iter_unpack("<e", bytes(data))]
    assert abs(statistics.fmean(values)) < sigma / 20
    assert statistics.pstdev(values) == pytest.approx(sigma, rel=0.05)
    # random low bytes: every value occurs, about equally often
    assert len(set(data[0::2])) == 256
    # the high bytes carry sign and exponent: few distinct values, both signs
    highs = set(data[1::2])
    assert 8 <= len(highs) <= 64
    assert any(h & 0x80 for h in highs) and any(not h & 0x80 for h in highs)


def test_float16_weights_are_reproducible(browser_bench: ModuleType) -> None:
    a = browser_bench._float16_like(1 << 16, 0.02, 11)
    assert a == browser_bench._float16_like(1 << 16, 0.02, 11)
    assert a != browser_bench._float16_like(1 << 16, 0.02, 12)


def test_an_unknown_corpus_is_refused(browser_bench: ModuleType) -> None:
    with pytest.raises(ValueError, match="unknown corpus 'bf16'"):
        browser_bench.bench_file(1, "bf16")
