"""The upload's SHA-256 is the same whichever hasher computes it on this thread
(``xet_pyodide.session.sha256.HASHER``: hashlib or the WebAssembly kernel)."""

from __future__ import annotations

import asyncio
import hashlib
import random

import pytest

from xet_pyodide.session import sha256 as sha_mod
from xet_pyodide.session.sha256 import COMPUTE, Sha256Tracker


def _digest(pieces: list[bytes]) -> tuple[str | None, bytes | None]:
    tracker = Sha256Tracker(COMPUTE)
    for piece in pieces:
        tracker.update(piece)
    return asyncio.run(tracker.finish(sum(map(len, pieces))))


@pytest.mark.parametrize("hasher", ["hashlib", "kernel"])
@pytest.mark.parametrize("sizes", [[0], [1], [55], [56], [64], [63, 1, 64, 130], [1 << 20, 3, 777]])
def test_tracker_digest_matches_openssl(monkeypatch: pytest.MonkeyPatch, hasher: str,
                                        sizes: list[int]) -> None:  # fmt: skip
    monkeypatch.setattr(sha_mod, "HASHER", hasher)
    rng = random.Random(sum(sizes) + len(sizes))
    pieces = [rng.randbytes(n) for n in sizes]
    hex_digest, shard_digest = _digest(pieces)
    expected = hashlib.sha256(b"".join(pieces)).digest()
    assert hex_digest == expected.hex()
    # hf_xet stores 32 zero bytes for an empty file
    assert shard_digest == (expected if sum(sizes) else bytes(32))


def test_unknown_hasher_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sha_mod, "HASHER", "md5")
    with pytest.raises(ValueError, match="HASHER"):
        Sha256Tracker(COMPUTE)
