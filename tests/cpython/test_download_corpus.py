"""The property test over the download corpus (tests/plugins/download_corpus.py): random byte
ranges downloaded by our client equal the slices of the originals, on a v2 server
and on the same data served by a v1-only server (``--disable v2-reconstructions``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.plugins.cas_server import CasServer
from tests.plugins.download_corpus import BASE, DEDUP_SIZE, Corpus, run_async


@pytest.fixture(scope="module")
def v1_server(corpus: Corpus) -> Iterator[CasServer]:
    """A second server process over the same data, without the v2 reconstruction endpoint."""
    server = CasServer(
        corpus.server.data_dir,
        dev_secret=corpus.server.dev_secret,
        disable=["v2-reconstructions"],
    ).start()
    yield server
    server.close()


async def _download_ranges(
    server: CasServer, file: dict[str, Any], ranges: list[tuple[int, int]]
) -> list[bytes]:
    from xet_pyodide import XetSession

    async with XetSession(server.url, server.token("read"), chunk_cache=False) as session:
        return [
            await session.download_bytes(file["hash"], file["size"], byte_range=r) for r in ranges
        ]


NAMES = ["text", "random", "floats", "repetitive", "dedup"]


@st.composite
def range_cases(draw: st.DrawFn) -> tuple[str, list[tuple[int, int]]]:
    name = draw(st.sampled_from(NAMES))
    size = BASE[name][1] if name in BASE else DEDUP_SIZE
    ranges = []
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.integers(0, size - 1))
        length = draw(st.one_of(st.integers(1, 300), st.integers(1, size)))
        ranges.append((start, start + length - 1))  # may run past the end: clamped
    return name, ranges


@pytest.mark.parametrize("flavour", ["v2", "v1"])
def test_random_ranges_match_slices(corpus: Corpus, v1_server: CasServer, flavour: str) -> None:
    server = corpus.server if flavour == "v2" else v1_server
    before = server.stats()

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(range_cases())
    def check(case: tuple[str, list[tuple[int, int]]]) -> None:
        name, ranges = case
        data = corpus.data[name]
        got = run_async(_download_ranges(server, corpus.files[name], ranges))
        for (start, end), part in zip(ranges, got, strict=True):
            assert part == data[start : end + 1], (name, start, end)

    check()
    after = server.stats()
    v1_calls = after["requests"].get("reconstruction_v1", 0)
    if flavour == "v1":
        assert set(after["statuses"].get("reconstruction_v2", {})) <= {"404"}
        assert v1_calls > before["requests"].get("reconstruction_v1", 0)
    else:
        assert v1_calls == before["requests"].get("reconstruction_v1", 0)
