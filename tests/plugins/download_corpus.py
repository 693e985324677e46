"""pytest plugin: the download corpus — files uploaded by hf_xet to one local CAS server, built
once per test session and shared by every download test (CPython, Node, Chromium).

``corpus`` (session scope) → :class:`Corpus`: ``.server`` (the CAS server), ``.data[name]``
(original bytes), ``.files[name]`` (``{"hash", "size", ...}`` as hf_xet reported them),
``.item(name, **extra)``, ``.read_token()``. Files (see :data:`BASE`): 0 B, 1 B, text,
random, float32 (BG4), a file whose terms reuse chunks, ``big`` (70 MB of random bytes: two
xorbs), and ``dedup``, uploaded in a second commit with the same shard cache so that its
terms point into the first commit's xorbs.

Tests that change the server (faults, stats) must restore it: ``set_faults()`` with no
arguments, and compare stats after ``reset_stats()``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.cas_server import CasServer
from tests.portable.upload_checks import make_data

MB = 1_000_000

#: name → (kind, size, seed), uploaded in one hf_xet commit.
BASE = {
    "empty": ("random", 0, 1),
    "one": ("random", 1, 2),
    "text": ("text", 70_000, 3),
    "random": ("random", 3 * MB, 4),
    "floats": ("floats", 2 * MB, 5),
    "repetitive": ("repetitive", 3 * MB, 6),  # terms reuse chunks of one xorb
    "big": ("random", 70 * MB, 8),  # more than one 64 MiB xorb
}
DEDUP_SIZE = 3_500_005


def dedup_data() -> bytes:
    """Most of its chunks are found in the first commit's xorbs (other files' xorbs)."""
    rnd = make_data("random", 3 * MB, 4)
    flt = make_data("floats", 2 * MB, 5)
    return rnd[1_000_000:2_600_000] + make_data("random", 400_000, 7) + flt[:1_500_000] + rnd[:5]


@dataclass
class Corpus:
    server: CasServer
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)

    def item(self, name: str, **extra: Any) -> dict[str, Any]:
        f = self.files[name]
        return {"hash": f["hash"], "size": f["size"], **extra}

    def read_token(self) -> tuple[str, int]:
        return self.server.token("read")


def build_corpus(root: Path, **server_options: Any) -> Corpus:
    server = CasServer(root / "data", **server_options).start()
    corpus = Corpus(server)
    try:
        paths = []
        for name, (kind, size, seed) in BASE.items():
            corpus.data[name] = make_data(kind, size, seed)
            paths.append(root / name)
            paths[-1].write_bytes(corpus.data[name])
        up = server.hf_upload(paths, hf_home=root / "hf")
        corpus.data["dedup"] = dedup_data()
        assert len(corpus.data["dedup"]) == DEDUP_SIZE
        (root / "dedup").write_bytes(corpus.data["dedup"])
        up2 = server.hf_upload([root / "dedup"], hf_home=root / "hf")
        assert up2["dedup"]["deduped_bytes"] > 2 * MB  # really reuses the first commit's xorbs
        for f in up["files"] + up2["files"]:
            corpus.files[Path(f["path"]).name] = f
        for p in paths:
            p.unlink()
    except BaseException:
        server.close()
        raise
    return corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    c = build_corpus(tmp_path_factory.mktemp("dl-corpus"))
    yield c
    c.server.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_async(coro: Any) -> Any:
    """Run a coroutine on a fresh loop in a worker thread (the main thread's loop may belong
    to Playwright)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


__all__ = ["BASE", "DEDUP_SIZE", "MB", "Corpus", "build_corpus", "corpus", "run_async", "sha"]
