"""Unit tests of the CAS server's pure parts: byte ranges, reconstruction planning, tokens,
signed URLs, fault rules, dedup key rotation, atomic object writes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from xet_cas_server import byteranges, reconstruction
from xet_cas_server.auth import Scope, TokenAuthority
from xet_cas_server.dedup import DedupKeys
from xet_cas_server.errors import Forbidden, Unauthorized
from xet_cas_server.faults import FaultInjector
from xet_cas_server.index import FileRow, StoredTerm
from xet_cas_server.layout import XorbLayout
from xet_cas_server.objects import ObjectFiles
from xet_cas_server.signing import ServerKeys, UrlSigner

from xet_pyodide.core.hashes import MerkleHash


# ---------------------------------------------------------------------------- byte ranges
def test_parse_ranges() -> None:
    assert byteranges.parse_ranges("bytes=0-9, 20-29") == [(0, 9), (20, 29)]
    for bad in ("bytes=5-", "bytes=-5", "items=0-1", "bytes=9-3", "bytes=a-b", "0-1"):
        with pytest.raises(ValueError):
            byteranges.parse_ranges(bad)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-99", 100, (0, 99)),
        ("bytes=0-1000", 100, (0, 99)),
        ("bytes=50-", 100, (50, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-1000", 100, (0, 99)),
        ("bytes=100-200", 100, None),
        ("bytes=0-0", 0, None),
        ("bytes=-0", 100, None),
    ],
)
def test_parse_file_range(header: str, size: int, expected: tuple[int, int] | None) -> None:
    assert byteranges.parse_file_range(header, size) == expected


def test_parse_file_range_rejects() -> None:
    for bad in ("bytes=0-1,5-6", "bytes=5-1", "bytes=-", "lines=1-2"):
        with pytest.raises(ValueError):
            byteranges.parse_file_range(bad, 100)


def test_merge_and_cover() -> None:
    assert byteranges.merge([(10, 19), (0, 4), (5, 9), (30, 40), (35, 36)]) == [(0, 19), (30, 40)]
    assert byteranges.all_covered([(0, 4), (30, 31)], [(0, 19), (30, 40)])
    assert not byteranges.all_covered([(15, 25)], [(0, 19), (20, 40)])  # spans two ranges


def test_multipart_layout() -> None:
    body = byteranges.multipart_byteranges([((5, 7), b"abc"), ((0, 1), b"xy")], 10, "BND")
    head = b"--BND\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes "
    assert body == (
        head + b"5-7/10\r\n\r\nabc\r\n" + head + b"0-1/10\r\n\r\nxy\r\n" + b"--BND--\r\n"
    )


# ---------------------------------------------------------------------------- planning
def _layout(seed: int, sizes: list[int], record_overhead: int = 8) -> XorbLayout:
    hashes = [MerkleHash(bytes([seed, k]) * 16) for k in range(len(sizes))]
    unpacked, records, u, r = [], [], 0, 0
    for s in sizes:
        u += s
        r += s // 2 + record_overhead  # "compressed" to half
        unpacked.append(u)
        records.append(r)
    return XorbLayout(MerkleHash(bytes([seed]) * 32), hashes, records, unpacked)


A = _layout(1, [100, 200, 300, 400])  # unpacked ends 100 300 600 1000
B = _layout(2, [50, 50])
LAYOUTS = {A.hash.hex(): A, B.hash.hex(): B}
# file = A[1:3) (500 B) + B[0:2) (100 B) + A[0:2) (300 B) + A[2:4) (700 B) = 1600 B
ROW = FileRow(
    "f" * 64,
    1600,
    [
        StoredTerm(A.hash.raw, 1, 3, 500),
        StoredTerm(B.hash.raw, 0, 2, 100),
        StoredTerm(A.hash.raw, 0, 2, 300),
        StoredTerm(A.hash.raw, 2, 4, 700),
    ],
    None,
)


def _terms(p: reconstruction.Plan) -> list[tuple[str, int, int, int]]:
    return [(t.xorb[:2], t.start, t.end, t.unpacked_length) for t in p.terms]


def test_plan_full_file_merges_fetch_ranges() -> None:
    p = reconstruction.plan(ROW, LAYOUTS.__getitem__, None)
    assert p.offset_into_first_range == 0
    assert _terms(p) == [
        (A.hash.hex()[:2], 1, 3, 500),
        (B.hash.hex()[:2], 0, 2, 100),
        (A.hash.hex()[:2], 0, 2, 300),
        (A.hash.hex()[:2], 2, 4, 700),
    ]
    # A is used at [1,3) [0,2) [2,4): overlapping and adjacent → one sorted, merged range
    assert p.fetch == {A.hash.hex(): [(0, 4)], B.hash.hex(): [(0, 2)]}


def test_plan_byte_range_trims_chunks() -> None:
    # bytes 250..650: term 0 (A chunk 2 = file 200..499), term 1 (500..599),
    # term 2 (600..899; its chunk 0 = file 600..699)
    p = reconstruction.plan(ROW, LAYOUTS.__getitem__, (250, 650))
    assert _terms(p) == [
        (A.hash.hex()[:2], 2, 3, 300),
        (B.hash.hex()[:2], 0, 2, 100),
        (A.hash.hex()[:2], 0, 1, 100),
    ]
    assert p.offset_into_first_range == 50  # file byte 250 is byte 50 of A's chunk 2
    assert p.fetch[A.hash.hex()] == [(0, 1), (2, 3)]  # not adjacent: two ranges, sorted


def test_plan_single_byte_and_last_byte() -> None:
    p = reconstruction.plan(ROW, LAYOUTS.__getitem__, (1599, 1599))
    assert _terms(p) == [(A.hash.hex()[:2], 3, 4, 400)]
    assert p.offset_into_first_range == 399
    p = reconstruction.plan(ROW, LAYOUTS.__getitem__, (0, 0))
    assert _terms(p) == [(A.hash.hex()[:2], 1, 2, 200)] and p.offset_into_first_range == 0


def test_render_v2_ranges_match_layout(tmp_path: Path) -> None:
    signer = UrlSigner(ServerKeys.load(tmp_path, "s"))
    p = reconstruction.plan(ROW, LAYOUTS.__getitem__, (250, 650))
    doc = reconstruction.render_v2(
        p, LAYOUTS.__getitem__, signer, "http://h", int(time.time()) + 60
    )
    (entry,) = doc["xorbs"][A.hash.hex()]
    assert entry["ranges"] == [
        {"chunks": {"start": 0, "end": 1}, "bytes": {"start": 0, "end": A.record_ends[0] - 1}},
        {
            "chunks": {"start": 2, "end": 3},
            "bytes": {"start": A.record_ends[1], "end": A.record_ends[2] - 1},
        },
    ]
    from urllib.parse import parse_qs, urlsplit

    url = urlsplit(entry["url"])
    params = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert signer.verify_xorb_url(url.path, params, time.time()) == [
        (0, A.record_ends[0] - 1),
        (A.record_ends[1], A.record_ends[2] - 1),
    ]
    v1 = reconstruction.render_v1(p, LAYOUTS.__getitem__, signer, "http://h", int(time.time()) + 60)
    assert [e["range"] for e in v1["fetch_info"][A.hash.hex()]] == [
        {"start": 0, "end": 1},
        {"start": 2, "end": 3},
    ]


# ---------------------------------------------------------------------------- tokens and URLs
def test_tokens(tmp_path: Path) -> None:
    auth = TokenAuthority(ServerKeys.load(tmp_path, "secret").token)
    token, exp = auth.mint(Scope.READ, 60, "models/x")
    claims = auth.check(token, Scope.READ)
    assert claims.scope is Scope.READ and claims.exp == exp and claims.repo == "models/x"
    with pytest.raises(Forbidden):
        auth.check(token, Scope.WRITE)
    write, _ = auth.mint(Scope.WRITE, 60)
    assert auth.check(write, Scope.READ).scope is Scope.WRITE
    with pytest.raises(Unauthorized, match="expired"):
        auth.check(token, Scope.READ, now=exp)
    other = TokenAuthority(ServerKeys.load(tmp_path, "other secret").token)
    with pytest.raises(Unauthorized, match="signature"):
        other.check(token, Scope.READ)
    with pytest.raises(Unauthorized, match="missing"):
        auth.check(None, Scope.READ)
    # the key survives a restart (same data dir and secret)
    assert TokenAuthority(ServerKeys.load(tmp_path, "secret").token).check(token, Scope.READ)


def test_grant_url_signature(tmp_path: Path) -> None:
    signer = UrlSigner(ServerKeys.load(tmp_path, "s"))
    exp = int(time.time()) + 30
    url = signer.sign_grant_url("http://h", "ab" * 32, "g1", exp)
    path, query = url[len("http://h") :].split("?")
    params = dict(kv.split("=", 1) for kv in query.split("&"))
    signer.verify_grant_url(path, params, time.time())
    with pytest.raises(Forbidden, match="signature"):
        signer.verify_grant_url(path.replace("g1", "g2"), params, time.time())
    with pytest.raises(Forbidden, match="expired"):
        signer.verify_grant_url(path, params, exp + 1)


# ---------------------------------------------------------------------------- faults
def test_fault_rules_are_deterministic() -> None:
    f = FaultInjector(
        {"endpoints": {"shard_v2": {"error_rate": 1.0, "status": 503, "max_faults": 2}}}
    )
    hits = [f.error_response("shard_v2") is not None for _ in range(4)]
    assert hits == [True, True, False, False]
    assert f.error_response("xorb_fetch") is None
    a = FaultInjector({"seed": 5, "endpoints": {"*": {"drop_rate": 0.5}}})
    b = FaultInjector({"seed": 5, "endpoints": {"*": {"drop_rate": 0.5}}})
    assert [a.decide("chunks", "drop") for _ in range(50)] == [
        b.decide("chunks", "drop") for _ in range(50)
    ]
    assert not a.decide("admin", "drop")  # never faulted
    # Each endpoint (and kind) rolls its own seeded dice: its n-th decision does not depend on
    # how many rolls other endpoints made in between (concurrent clients stay reproducible).
    config = {"seed": 7, "endpoints": {"*": {"error_rate": 0.3, "status": 503, "drop_rate": 0.3}}}
    alone, mixed = FaultInjector(config), FaultInjector(config)
    want = [alone.decide("grant_put", "error") for _ in range(40)]
    got = []
    for i in range(40):
        for _ in range(i % 3):
            mixed.decide("xorb_commit", "error")
            mixed.decide("grant_put", "drop")
        got.append(mixed.decide("grant_put", "error"))
    assert got == want and 0 < sum(want) < 40
    r = FaultInjector(
        {"endpoints": {"chunks": {"error_rate": 1, "status": 429, "retry_after": 9}}}
    ).error_response("chunks")
    assert r is not None and r.status_code == 429 and r.headers["retry-after"] == "9"
    for bad in (
        {"endpoints": {"nope": {}}},
        {"endpoints": {"admin": {}}},
        {"endpoints": {"*": {"x": 1}}},
        {"what": 1},
        {"endpoints": {"*": {"status": 200, "error_rate": 1}}},
        {"token_ttl": 0},
    ):
        with pytest.raises(ValueError):
            FaultInjector(bad)


def test_dedup_keys_rotate() -> None:
    keys = DedupKeys(b"k" * 32, ttl=100)
    k1, created, expiry = keys.current(1000.5)
    assert (created, expiry) == (1000, 1100)
    assert keys.current(1099)[0] == k1
    assert keys.current(1100)[0] != k1


# ---------------------------------------------------------------------------- objects
def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    objects = ObjectFiles(tmp_path)

    with pytest.raises(TypeError):  # fails half-way through writing the parts
        objects.write_atomic("xorb", "ab" * 32, b"x", object())  # type: ignore[arg-type]
    assert not list(objects.tmp.iterdir())
    assert not objects.path("xorb", "ab" * 32).exists()
    path = objects.write_atomic("xorb", "cd" * 32, b"hello", b" world")
    assert path.read_bytes() == b"hello world"
    assert objects.read_ranges("xorb", "cd" * 32, [(6, 10), (0, 4)]) == [b"world", b"hello"]
    assert list(objects.iter_hashes("xorb")) == ["cd" * 32]
