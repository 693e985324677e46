"""hf_xet 1.8.0 (the native reference client) against the local CAS server: uploads, dedup and
downloads in every mode hf_xet has. hf_xet runs in child processes (own HF_HOME = own shard
cache, own config), see ``xet_cas_server.hfxet_driver``."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.plugins.cas_server import CasServer

# Harmless once tests/conftest.py registers the plugin too (a plugin is registered once).

MB = 1_000_000


def rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def repetitive(n: int, seed: int) -> bytes:
    """Highly compressible data with long repeats (a 100 kB random block, repeated)."""
    block = rand(100_000, seed)
    return (block * (n // len(block) + 1))[:n]


def write(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


def download_all(
    server: CasServer, uploaded: list[dict[str, Any]], tmp: Path, **kw: Any
) -> list[bytes]:
    items = [
        {"hash": f["hash"], "size": f["size"], "dest": tmp / f"out-{i}"}
        for i, f in enumerate(uploaded)
    ]
    server.hf_download(items, hf_home=tmp / "hf-dl", **kw)
    return [Path(i["dest"]).read_bytes() for i in items]


def endpoint_statuses(server: CasServer) -> dict[str, dict[str, int]]:
    return server.stats()["statuses"]


def test_multi_file_commit_roundtrip(cas_server_factory, tmp_path: Path) -> None:
    """0 B .. 5 MB, random and repetitive, in one commit (grant flow, v2 shards), then one
    download group (v2 reconstructions): every file byte-identical, hashes as hf_xet computes."""
    import hf_xet

    server = cas_server_factory()
    datas = [b"", b"x", rand(8191, 1), rand(131_073, 2), rand(3 * MB, 3), repetitive(5 * MB, 4)]
    paths = [write(tmp_path, f"in-{i}", d) for i, d in enumerate(datas)]
    result = server.hf_upload(paths, hf_home=tmp_path / "hf-up")
    files = result["files"]
    assert [f["size"] for f in files] == [len(d) for d in datas]
    assert [f["hash"] for f in files] == [
        i.hash for i in hf_xet.hash_files([str(p) for p in paths])
    ]
    # hf_xet reports (and writes into the shard) an all-zero sha256 for the empty file
    expected_sha = ["0" * 64] + [hashlib.sha256(d).hexdigest() for d in datas[1:]]
    assert [f["sha256"] for f in files] == expected_sha

    stats = server.stats()
    assert stats["requests"].get("xorb_upload", 0) == 0  # grant flow, not the legacy POST
    assert stats["statuses"]["xorb_commit"] == {"200": stats["requests"]["xorb_grant"]}
    assert stats["statuses"]["shard_v2"] == {"200": 1}
    assert stats["files_registered"] == len({f["hash"] for f in files})
    assert stats["xorb_bytes_received"] > 0

    server.reset_stats()
    assert download_all(server, files, tmp_path) == datas  # (hf_xet skips the server for 0 B)
    stats = server.stats()
    assert set(stats["statuses"]["reconstruction_v2"]) == {"200"}
    assert stats["xorb_bytes_served"] > 0


def test_reupload_sends_no_xorb_bytes(cas_server_factory, tmp_path: Path) -> None:
    """Same content again, from a fresh client cache (global dedup + existing xorbs) and from
    the same cache (local shard cache): no xorb bytes reach the server either way."""
    server = cas_server_factory()
    paths = [write(tmp_path, "a", rand(4 * MB, 10)), write(tmp_path, "b", repetitive(3 * MB, 11))]
    first = server.hf_upload(paths, hf_home=tmp_path / "hf-1")
    for hf_home in ("hf-2", "hf-1"):
        server.reset_stats()
        again = server.hf_upload(paths, hf_home=tmp_path / hf_home)
        assert [f["hash"] for f in again["files"]] == [f["hash"] for f in first["files"]]
        stats = server.stats()
        assert stats["xorb_bytes_received"] == 0, hf_home
        assert stats["xorbs_inserted"] == 0
        assert again["dedup"]["xorb_bytes_uploaded"] == 0


def test_global_dedup_across_sessions(cas_server_factory, tmp_path: Path) -> None:
    """A new session (empty cache) uploading a file that shares 4 MB with an earlier upload
    finds it through ``GET /v1/chunks`` and sends only the new part."""
    server = cas_server_factory()
    shared, extra = rand(4 * MB, 20), rand(2 * MB, 21)
    server.hf_upload([write(tmp_path, "a", shared)], hf_home=tmp_path / "hf-a")
    server.reset_stats()
    combined = shared + extra
    result = server.hf_upload([write(tmp_path, "b", combined)], hf_home=tmp_path / "hf-b")
    stats = server.stats()
    assert stats["dedup_queries"] >= 1
    assert stats["dedup_hits"] >= 1
    assert result["dedup"]["deduped_bytes_by_global_dedup"] >= 3 * MB
    # only the new 2 MB (plus chunk headers, and at most one re-cut boundary chunk) travel
    assert stats["xorb_bytes_received"] < len(extra) + 300_000
    assert download_all(server, result["files"], tmp_path) == [combined]


def test_download_v1_forced(cas_server_factory, tmp_path: Path) -> None:
    """With the v2 endpoints switched off hf_xet falls back to v1 shards and reconstructions."""
    server = cas_server_factory(disable=["v2-shards", "v2-reconstructions"])
    data = [rand(2 * MB, 30), repetitive(3 * MB, 31)]
    files = server.hf_upload(
        [write(tmp_path, f"f{i}", d) for i, d in enumerate(data)], hf_home=tmp_path / "u"
    )
    assert download_all(server, files["files"], tmp_path) == data
    statuses = endpoint_statuses(server)
    assert statuses["shard_v2"] == {"404": 1} and statuses["shard_v1"] == {"200": 1}
    assert set(statuses["reconstruction_v1"]) == {"200"}
    assert set(statuses["reconstruction_v2"]) == {"404"}


def _fragmented_file(server: CasServer, tmp_path: Path) -> tuple[dict[str, Any], bytes]:
    """A file whose terms hit one xorb at several separate and repeated chunk ranges."""
    base = rand(6 * MB, 40)
    server.hf_upload([write(tmp_path, "base", base)], hf_home=tmp_path / "hf-base")
    data = base[: 2 * MB] + rand(MB, 41) + base[4 * MB :] + base[: 2 * MB] + base[3 * MB : 5 * MB]
    result = server.hf_upload([write(tmp_path, "frag", data)], hf_home=tmp_path / "hf-frag")
    return result["files"][0], data


def test_multirange_fetching(cas_server_factory, tmp_path: Path) -> None:
    """hf_xet's multi-range mode: one GET with several ranges → multipart/byteranges. It only
    works if the v2 ranges are sorted and merged (docs/protocol.md §7.7)."""
    server = cas_server_factory()
    file, data = _fragmented_file(server, tmp_path)
    server.reset_stats()
    config = {"client.enable_multirange_fetching": True}
    assert download_all(server, [file], tmp_path, config=config) == [data]
    fetches = [e for e in server.request_log() if e["endpoint"] == "xorb_fetch"]
    assert any(e["ranges"] > 1 for e in fetches), fetches
    assert all(e["status"] == 206 for e in fetches)
    # the default (one range per request) mode agrees
    single = tmp_path / "single"
    single.mkdir()
    assert download_all(server, [file], single) == [data]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 1),
        (1, 200_001),
        (65_000, 3_000_001),
        (3_999_999, None),
        (None, 777_777),
        (123_456, 123_457),
    ],
)
def test_stream_byte_ranges(cas_server, tmp_path: Path, start: int | None, end: int | None) -> None:
    """download_stream with a byte range → reconstruction with Range, offset_into_first_range."""
    data = rand(4 * MB, 50)
    file = cas_server.hf_upload([write(tmp_path, "f", data)], hf_home=tmp_path / "u")["files"][0]
    dest = tmp_path / "range.out"
    cas_server.hf_stream(
        file["hash"], file["size"], dest, start=start, end=end, hf_home=tmp_path / "d"
    )
    assert dest.read_bytes() == data[start:end]


def test_token_refresh_url(cas_server_factory, tmp_path: Path) -> None:
    """hf_xet's token_refresh_url mode against the Hub-shaped token endpoint: with no seeded
    token it fetches one; with a seeded token that has < 30 s left it refreshes before use."""
    server = cas_server_factory()
    data = rand(3 * MB, 60)
    up = server.hf_upload(
        [write(tmp_path, "f", data)], hf_home=tmp_path / "u", refresh=True, token_ttl=None
    )
    assert server.stats()["statuses"]["token"] == {"200": 1}

    server.reset_stats()
    out = download_all(server, up["files"], tmp_path, refresh=True, token_ttl=10)
    assert out == [data]
    stats = server.stats()
    assert stats["statuses"]["token"] == {"200": 2}  # the seeded token + hf_xet's refresh
    for endpoint, by_status in stats["statuses"].items():
        assert "401" not in by_status and "403" not in by_status, endpoint
    # the endpoint refuses refreshes without the dev secret
    import httpx

    assert httpx.get(server.token_url("read")).status_code == 401


def test_legacy_direct_xorb_upload(cas_server_factory, tmp_path: Path) -> None:
    server = cas_server_factory()
    data = [rand(2 * MB, 70), rand(100_000, 71)]
    config = {"client.legacy_direct_xorb_upload": True}
    up = server.hf_upload(
        [write(tmp_path, f"f{i}", d) for i, d in enumerate(data)],
        hf_home=tmp_path / "u",
        config=config,
    )
    stats = server.stats()
    assert stats["requests"].get("xorb_grant", 0) == 0
    assert stats["statuses"]["xorb_upload"] == {"200": stats["requests"]["xorb_upload"]}
    assert download_all(server, up["files"], tmp_path) == data


def test_grant_api_absent_falls_back_to_legacy(cas_server_factory, tmp_path: Path) -> None:
    server = cas_server_factory(disable=["grants"])
    data = rand(MB, 80)
    up = server.hf_upload([write(tmp_path, "f", data)], hf_home=tmp_path / "u")
    statuses = endpoint_statuses(server)
    assert set(statuses["xorb_grant"]) == {"404"}
    assert set(statuses["xorb_upload"]) == {"200"}
    assert download_all(server, up["files"], tmp_path) == [data]


FAST_RETRY = {"client.retry_base_delay": "50ms"}


def test_transient_faults_are_survived(cas_server_factory, tmp_path: Path) -> None:
    """5xx/429 on every upload step once, a dropped acknowledgement, an aborted body: hf_xet
    retries and the result is complete and correct."""
    once = {"error_rate": 1.0, "max_faults": 1}
    faults = {
        "endpoints": {
            "xorb_grant": {**once, "status": 503},
            "grant_put": {"drop_rate": 1.0, "max_faults": 1},
            "xorb_commit": {**once, "status": 429},
            "shard_v2": {"abort_rate": 1.0, "max_faults": 1},
            "reconstruction_v2": {**once, "status": 500},
            "xorb_fetch": {"drop_rate": 1.0, "max_faults": 1},
        }
    }
    server = cas_server_factory(faults=faults)
    data = rand(3 * MB, 90)
    up = server.hf_upload([write(tmp_path, "f", data)], hf_home=tmp_path / "u", config=FAST_RETRY)
    assert download_all(server, up["files"], tmp_path, config=FAST_RETRY) == [data]
    log = server.request_log()
    injected = sorted({(e["endpoint"], e.get("fault")) for e in log if e.get("fault")})
    assert injected == sorted(
        [("grant_put", "drop"), ("reconstruction_v2", "error"), ("shard_v2", "abort"),
         ("xorb_commit", "error"), ("xorb_fetch", "drop"), ("xorb_grant", "error")]
    )  # fmt: skip


def test_expired_signed_urls_are_refreshed(cas_server_factory, tmp_path: Path) -> None:
    """A reconstruction whose URLs are already expired: the xorb GET gets 403 and hf_xet asks
    for a new reconstruction (docs/protocol.md §7.3)."""
    server = cas_server_factory()
    data = rand(2 * MB, 100)
    up = server.hf_upload([write(tmp_path, "f", data)], hf_home=tmp_path / "u")
    server.set_faults(endpoints={"reconstruction_v2": {"expire_rate": 1.0, "max_faults": 1}})
    server.reset_stats()
    assert download_all(server, up["files"], tmp_path, config=FAST_RETRY) == [data]
    statuses = endpoint_statuses(server)
    assert "403" in statuses["xorb_fetch"] and "206" in statuses["xorb_fetch"]
    assert statuses["reconstruction_v2"]["200"] >= 2


def test_corrupt_fault_as_seen_by_hf_xet(cas_server_factory, tmp_path: Path) -> None:
    """The ``corrupt`` fault flips one payload byte of a signed-URL GET. hf_xet 1.8.0 does not
    re-hash downloaded chunks: a flip inside an LZ4 chunk breaks decoding and is retried, but
    a flip inside a raw (incompressible) chunk ends up in the file. Our own client must verify."""
    server = cas_server_factory()
    rng = random.Random(2)
    words = [rng.randbytes(4) for _ in range(300)]
    text = b" ".join(rng.choice(words) for _ in range(400_000))[: 2 * MB]
    noise = rand(2 * MB, 1)
    up = server.hf_upload(
        [write(tmp_path, "text", text), write(tmp_path, "noise", noise)], hf_home=tmp_path / "u"
    )
    once = {"endpoints": {"xorb_fetch": {"corrupt_rate": 1.0, "max_faults": 1}}}
    results = []
    for f, name in zip(up["files"], ("text", "noise"), strict=True):
        server.set_faults(**once)
        server.reset_stats()
        dest = tmp_path / f"{name}.out"
        server.hf_download([{**f, "dest": dest}], hf_home=tmp_path / f"d-{name}", config=FAST_RETRY)
        fetches = [e for e in server.request_log() if e["endpoint"] == "xorb_fetch"]
        results.append((dest.read_bytes(), [e.get("fault") for e in fetches]))
    assert results[0] == (text, ["corrupt", None])  # LZ4 decode failed: fetched again
    out, faults = results[1]
    assert faults == ["corrupt"] and len(out) == len(noise)
    assert sum(a != b for a, b in zip(out, noise, strict=True)) == 1  # silently wrong byte


@pytest.mark.slow
def test_200mb_random_and_repetitive(cas_server, tmp_path: Path) -> None:
    """The largest files of the issue: 200 MB random (4 xorbs) and 64 MB repetitive."""
    big = tmp_path / "big"
    rng = random.Random(7)
    digest = hashlib.sha256()
    with open(big, "wb") as f:
        for _ in range(200):
            block = rng.randbytes(MB)
            digest.update(block)
            f.write(block)
    rep = write(tmp_path, "rep", repetitive(64 * MB, 8))
    up = cas_server.hf_upload([big, rep], hf_home=tmp_path / "u")
    assert up["files"][0]["sha256"] == digest.hexdigest()
    items = [
        {"hash": f["hash"], "size": f["size"], "dest": tmp_path / f"out{i}"}
        for i, f in enumerate(up["files"])
    ]
    cas_server.hf_download(items, hf_home=tmp_path / "d")
    out = hashlib.sha256()
    with open(items[0]["dest"], "rb") as f:
        while block := f.read(8 * MB):
            out.update(block)
    assert out.hexdigest() == digest.hexdigest()
    assert Path(items[1]["dest"]).read_bytes() == rep.read_bytes()
