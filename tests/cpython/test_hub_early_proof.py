"""The Hub's sha256 proof done during the upload (xet_cas_server.hub.early): a file whose terms
are a write token's xorbs in upload-start order is proven from the saved SHA-256 states, with
no rebuild at commit; everything else falls back to the rebuild, with the same results and
errors."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from xet_cas_server.hub import content, early
from xet_cas_server.hub.early import EarlyProofs
from xet_cas_server.stats import Stats
from xet_cas_server.store import Store

from tests.cpython._core_helpers import pack_xorbs, random_input
from xet_pyodide.core.chunking import chunk_data
from xet_pyodide.core.shard import serialize_shard
from xet_pyodide.core.shard_model import Shard, XorbEntry
from xet_pyodide.core.terms import build_file_entry
from xet_pyodide.core.xorb import Scheme, Xorb
from xet_pyodide.errors import XetFormatError


def _data(seed: int, n: int = 900_000) -> bytes:
    rng = random.Random(seed)
    return b"".join(random_input(rng, n, k) for k in ("random", "text", "floats"))


def _xorbs(data: bytes, scheme: Scheme | None = None) -> list[Xorb]:
    """``data`` packed 12 chunks to a xorb (several small xorbs)."""
    return pack_xorbs(data, scheme, per_xorb=12)


def _register(store: Store, xorbs: list[Xorb], data: bytes, chunks: int | None = None) -> str:
    """A shard registering a file made of the first ``chunks`` chunks of ``xorbs`` (all of
    them by default), with the sha256 of ``data`` claimed; returns the file hash."""
    hashes, sizes, locations = [], [], []
    for x in xorbs:
        hashes += x.chunk_hashes
        sizes += x.chunk_sizes
        locations += [(x.hash, k) for k in range(x.num_chunks)]
    if chunks is not None:
        hashes, sizes, locations = hashes[:chunks], sizes[:chunks], locations[:chunks]
    entry = build_file_entry(hashes, sizes, locations, hashlib.sha256(data).digest())
    entries = [XorbEntry.from_chunks(x.hash, x.chunk_hashes, x.chunk_sizes) for x in xorbs]
    body = serialize_shard(Shard([entry], entries))
    store.put_shard(body, store.parse_shard(body), "r")
    return entry.file_hash.hex()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path, max_shard_bytes=1 << 26)
    yield s
    s.close()


@pytest.fixture
def rebuilds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The file hashes :func:`content.sha256_of` (the full rebuild) was called for."""
    calls: list[str] = []
    real = content.sha256_of

    def counting(store: Store, file_hash: str) -> str:
        calls.append(file_hash)
        return real(store, file_hash)

    monkeypatch.setattr(content, "sha256_of", counting)
    return calls


MakeProofs = Callable[..., EarlyProofs]


@pytest.fixture
def make_proofs() -> Iterator[MakeProofs]:
    """``EarlyProofs(...)``, each closed when the test ends."""
    made: list[EarlyProofs] = []

    def make(*args: Any, **kwargs: Any) -> EarlyProofs:
        made.append(EarlyProofs(*args, **kwargs))
        return made[-1]

    yield make
    for proofs in made:
        proofs.close()


def _upload(proofs: EarlyProofs, store: Store, owner: str, xorbs: list[Xorb]) -> None:
    """What the upload routes report: every start first (grants), then each xorb stored."""
    for x in xorbs:
        proofs.xorb_started(owner, "models/a/b", x.hash.hex())
    for x in xorbs:
        assert store.put_xorb(x.body, x.hash)
        proofs.xorb_stored(x.hash.hex())


@pytest.mark.parametrize("background", [True, False], ids=["background", "at-commit"])
@pytest.mark.parametrize("scheme", [None, Scheme.NONE, Scheme.BG4_LZ4], ids=str)
def test_streamed_proof_needs_no_rebuild(
    store: Store,
    make_proofs: MakeProofs,
    rebuilds: list[str],
    background: bool,
    scheme: Scheme | None,
) -> None:
    data = _data(1)
    xorbs = _xorbs(data, scheme=scheme)
    assert len(xorbs) >= 3
    stats = Stats()
    proofs = make_proofs(store, stats, background=background)
    _upload(proofs, store, "tok", xorbs)
    name = _register(store, xorbs, data)
    assert proofs.sha256_of(name) == hashlib.sha256(data).hexdigest()
    assert rebuilds == []
    counters = stats.snapshot()
    assert (counters["sha256_proofs_streamed"], counters["sha256_proofs_rebuilt"]) == (1, 0)
    # (the background thread hashed every xorb; at commit, the committing thread did)
    assert proofs._streams["tok"].hashed == len(xorbs)


def test_file_ending_inside_its_last_xorb(
    store: Store, make_proofs: MakeProofs, rebuilds: list[str]
) -> None:
    """The file stops mid-xorb (a next file would go on in it): the state saved before that
    xorb, continued over the file's chunks of it."""
    data = _data(2)
    xorbs = _xorbs(data)
    chunks = sum(x.num_chunks for x in xorbs[:-1]) + xorbs[-1].num_chunks // 2
    prefix = b"".join(chunk_data(data)[:chunks])
    proofs = make_proofs(store, background=False)
    _upload(proofs, store, "tok", xorbs)
    name = _register(store, xorbs, prefix, chunks)
    assert proofs.sha256_of(name) == hashlib.sha256(prefix).hexdigest()
    assert rebuilds == []


def test_wrong_claim_is_the_stored_bytes_sha256(
    store: Store, make_proofs: MakeProofs, rebuilds: list[str]
) -> None:
    """A false claim gets the real digest from the stream (the caller refuses it: 422)."""
    data = _data(3)
    xorbs = _xorbs(data)
    proofs = make_proofs(store)
    _upload(proofs, store, "tok", xorbs)
    name = _register(store, xorbs, b"something else")
    assert store.file(name).sha256 == hashlib.sha256(b"something else").hexdigest()
    assert proofs.sha256_of(name) == hashlib.sha256(data).hexdigest()
    assert rebuilds == []


def test_out_of_order_starts_fall_back_to_the_rebuild(
    store: Store, make_proofs: MakeProofs, rebuilds: list[str]
) -> None:
    data = _data(4)
    xorbs = _xorbs(data)
    proofs = make_proofs(store)
    _upload(proofs, store, "tok", [xorbs[1], xorbs[0], *xorbs[2:]])
    name = _register(store, xorbs, data)
    assert proofs.sha256_of(name) == hashlib.sha256(data).hexdigest()
    assert rebuilds == [name]


def test_reordered_middle_continues_from_the_shared_start(
    store: Store, make_proofs: MakeProofs, rebuilds: list[str]
) -> None:
    """Two xorbs whose uploads started swapped (a client's concurrent requests arriving out of
    order): the state after the shared first xorbs is kept, the rest hashed at commit."""
    data = _data(7, 1_500_000)
    xorbs = _xorbs(data)
    assert len(xorbs) >= 5
    stats = Stats()
    proofs = make_proofs(store, stats)
    _upload(proofs, store, "tok", [*xorbs[:2], xorbs[3], xorbs[2], *xorbs[4:]])
    name = _register(store, xorbs, data)
    assert proofs.streamed_sha256(name) == (
        hashlib.sha256(data).hexdigest(),
        len(xorbs) - 2,
    )
    assert proofs.sha256_of(name) == hashlib.sha256(data).hexdigest()
    assert rebuilds == []
    snap = stats.snapshot()
    assert snap["sha256_proofs_partly_streamed"] == 1
    assert snap["sha256_proofs_streamed"] == snap["sha256_proofs_rebuilt"] == 0


def test_deduplicated_and_partial_streams_fall_back(
    store: Store, make_proofs: MakeProofs, rebuilds: list[str]
) -> None:
    """Xorbs stored before (not in this token's stream), a stream that misses the file's first
    xorb, and a file that starts inside a stream are all rebuilt — and proven right."""
    data = _data(5)
    xorbs = _xorbs(data)
    proofs = make_proofs(store)
    for x in xorbs[:2]:
        store.put_xorb(x.body, x.hash)
    _upload(proofs, store, "tok", xorbs[2:])
    name = _register(store, xorbs, data)
    assert proofs.sha256_of(name) == hashlib.sha256(data).hexdigest()
    assert rebuilds == [name]
    # a second file: the second half's xorbs, which "tok" streamed after another start
    tail = b"".join(chunk_data(data)[sum(x.num_chunks for x in xorbs[:3]) :])
    tail_name = _register(store, xorbs[3:], tail)
    assert proofs.sha256_of(tail_name) == hashlib.sha256(tail).hexdigest()
    assert rebuilds == [name, tail_name]


def test_damaged_record_fails_as_the_rebuild_does(
    store: Store, make_proofs: MakeProofs, rebuilds: list[str]
) -> None:
    """A record damaged after validation stops the stream; the commit's proof is then the
    rebuild, which raises XetFormatError as ever."""
    data = random_input(random.Random(6), 900_000, "floats")
    xorbs = _xorbs(data, scheme=Scheme.LZ4)
    for x in xorbs:
        store.put_xorb(x.body, x.hash)
    path = store.objects.path("xorb", xorbs[1].hash.hex())
    raw = bytearray(path.read_bytes())
    raw[4] = 0xEE  # the first record's scheme byte
    path.chmod(0o644)
    path.write_bytes(bytes(raw))
    proofs = make_proofs(store, background=False)
    for x in xorbs:
        proofs.xorb_started("tok", "models/a/b", x.hash.hex())
    name = _register(store, xorbs, data)
    with pytest.raises(XetFormatError):
        proofs.sha256_of(name)
    assert rebuilds == [name]
    assert proofs._streams["tok"].failed


def test_streams_are_bounded(
    store: Store, make_proofs: MakeProofs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(early, "MAX_STREAMS", 3)
    monkeypatch.setattr(early, "MAX_STREAM_XORBS", 2)
    proofs = make_proofs(store, background=False)
    for k in range(5):
        for j in range(4):
            proofs.xorb_started(f"tok{k}", "models/a/b", f"{k:02x}{j:062x}")
    # a retried start: not appended again
    proofs.xorb_started("tok4", "models/a/b", f"{4:02x}{0:062x}")
    assert list(proofs._streams) == ["tok2", "tok3", "tok4"]
    assert [len(s.xorbs) for s in proofs._streams.values()] == [2, 2, 2]
    followed = make_proofs(store, follow=lambda repo: repo == "models/a/b", background=False)
    followed.xorb_started("t1", "models/a/b", "00" * 32)
    followed.xorb_started("t2", "models/c/d", "00" * 32)  # not a Hub repository
    assert followed._streams["t1"] is not None and followed._streams["t2"] is None


def test_registered_files_are_proven_ahead_of_their_commit(
    store: Store, make_proofs: MakeProofs, rebuilds: list[str]
) -> None:
    """A shard's files with a sha256 claim are proven when it registers them, in a worker
    thread: a file no stream holds is rebuilt there (not in the commit), its commit takes the
    result; an error of that proof is raised by the commit; claims already proven (``needed``
    false) and files without a claim start nothing."""
    data, other = _data(8), _data(9)
    xorbs, other_xorbs = _xorbs(data, scheme=Scheme.LZ4), _xorbs(other)
    for x in [*xorbs, *other_xorbs]:
        store.put_xorb(x.body, x.hash)
    name, other_name = _register(store, xorbs, data), _register(store, other_xorbs, other)
    stats = Stats()
    proven = hashlib.sha256(other).hexdigest()
    proofs = make_proofs(store, stats, needed=lambda sha256, size: sha256 != proven)
    proofs.files_registered(
        "models/a/b",
        [
            (name, hashlib.sha256(data).hexdigest(), len(data)),
            (other_name, proven, 1),
            ("f", None, 1),
        ],
    )
    assert list(proofs._ahead) == [name]
    proofs._ahead[name].result(timeout=30)
    assert rebuilds == [name]  # in the worker thread, before any commit
    assert proofs.sha256_of(name) == hashlib.sha256(data).hexdigest()
    assert rebuilds == [name] and proofs._ahead == {}
    snap = stats.snapshot()
    assert (snap["sha256_proofs_ahead"], snap["sha256_proofs_rebuilt"]) == (1, 1)

    # damaged after registration: the proof made ahead fails, the commit raises it
    path = store.objects.path("xorb", xorbs[0].hash.hex())
    raw = bytearray(path.read_bytes())
    raw[4] = 0xEE
    path.chmod(0o644)
    path.write_bytes(bytes(raw))
    proofs.files_registered("models/a/b", [(name, hashlib.sha256(data).hexdigest(), 1)])
    with pytest.raises(XetFormatError):
        proofs._ahead[name].result(timeout=30)
    with pytest.raises(XetFormatError):
        proofs.sha256_of(name)
