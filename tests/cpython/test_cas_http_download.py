"""The read half of the CAS HTTP API, spoken directly: global dedup answers, reconstructions
(v1/v2, ranges, 416), signed xorb URLs (single/multi-range, tampering, expiry), corruption fault."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.cpython._cas_helpers import (  # noqa: F401 (the fixtures)
    client_fixture,
    server_fixture,
    upload_xorbs,
)
from tests.plugins.cas_server import build_upload
from tests.plugins.cas_server import rand_bytes as rand

if TYPE_CHECKING:
    from tests.plugins.cas_server import CasServer


# ---------------------------------------------------------------------------- dedup
def test_global_dedup_query(server: CasServer, client: httpx.Client) -> None:
    from xet_pyodide.core.hashes import hmac_hash
    from xet_pyodide.core.shard import parse_shard

    up = build_upload([rand(400_000, 15)])
    upload_xorbs(client, up.xorbs)
    x = up.xorbs[0]
    first = x.chunk_hashes[0]
    assert client.get(f"/v1/chunks/default/{first}").status_code == 404  # no file yet
    assert client.post("/v1/shards", content=up.shard).status_code == 200
    for prefix in ("default", "default-merkledb"):
        r = client.get(f"/v1/chunks/{prefix}/{first}")
        assert r.status_code == 200
    shard = parse_shard(r.content)
    assert shard.files == []
    assert [e.xorb_hash for e in shard.xorbs] == [x.hash]
    info = shard.footer
    assert info is not None and info.protected
    assert 0 <= time.time() - info.creation_timestamp < 60
    assert info.key_expiry - info.creation_timestamp == 7 * 24 * 3600
    chunks = shard.xorbs[0].chunks
    assert [c.hash for c in chunks] == [hmac_hash(h, info.hmac_key) for h in x.chunk_hashes]
    assert [c.size for c in chunks] == x.chunk_sizes
    assert client.get(f"/v1/chunks/default/{x.chunk_hashes[1]}").status_code == 404  # not eligible
    stats = server.stats()
    assert stats["dedup_queries"] == 4 and stats["dedup_hits"] == 2


# ---------------------------------------------------------------------------- reconstruction
@pytest.fixture
def registered(server: CasServer, client: httpx.Client) -> tuple[Any, bytes]:
    data = rand(1_000_000, 16)
    up = build_upload([data], chunk_size=100_000)
    upload_xorbs(client, up.xorbs)
    assert client.post("/v1/shards", content=up.shard).status_code == 200
    return up, data


def _fetch(url: str, ranges: list[tuple[int, int]]) -> httpx.Response:
    spec = ",".join(f"{a}-{b}" for a, b in ranges)
    return httpx.get(url, headers={"Range": f"bytes={spec}"})


@pytest.mark.parametrize(
    ("first", "last"),
    [(0, 999_999), (150_000, 150_000), (99_999, 100_000), (250_001, 712_345), (999_990, 5_000_000)],
)
def test_reconstruction_ranges(
    client: httpx.Client, registered: tuple[Any, bytes], first: int, last: int
) -> None:
    from xet_pyodide.core.xorb import decode_xorb

    up, data = registered
    fh = up.file_hashes[0]
    r = client.get(f"/v2/reconstructions/{fh}", headers={"Range": f"bytes={first}-{last}"})
    assert r.status_code == 200
    doc = r.json()
    out = b""
    for term in doc["terms"]:
        (entry,) = doc["xorbs"][term["hash"]]
        rng = next(
            x
            for x in entry["ranges"]
            if x["chunks"]["start"] <= term["range"]["start"]
            and term["range"]["end"] <= x["chunks"]["end"]
        )
        part = _fetch(entry["url"], [(rng["bytes"]["start"], rng["bytes"]["end"])])
        assert part.status_code == 206
        chunks = decode_xorb(part.content)
        c0 = rng["chunks"]["start"]
        piece = b"".join(chunks[term["range"]["start"] - c0 : term["range"]["end"] - c0])
        assert len(piece) == term["unpacked_length"]
        out += piece
    out = out[doc["offset_into_first_range"] :][: last - first + 1]
    assert out == data[first : last + 1]
    assert doc["offset_into_first_range"] == first % 100_000
    # v1 answers the same terms
    v1 = client.get(f"/v1/reconstructions/{fh}", headers={"Range": f"bytes={first}-{last}"}).json()
    assert (
        v1["terms"] == doc["terms"]
        and v1["offset_into_first_range"] == doc["offset_into_first_range"]
    )
    for entries in v1["fetch_info"].values():
        for e in entries:
            part = _fetch(e["url"], [(e["url_range"]["start"], e["url_range"]["end"])])
            assert part.status_code == 206


def test_reconstruction_errors(
    server: CasServer, client: httpx.Client, registered: tuple[Any, bytes]
) -> None:
    up, data = registered
    fh = up.file_hashes[0]
    for version in (1, 2):
        r = client.get(
            f"/v{version}/reconstructions/{fh}",
            headers={"Range": f"bytes={len(data)}-{len(data) + 10}"},
        )
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(data)}"
        assert (
            client.get(
                f"/v{version}/reconstructions/{fh}", headers={"Range": "pages=1-2"}
            ).status_code
            == 400
        )
        assert client.get(f"/v{version}/reconstructions/{'1' * 64}").status_code == 404
    full = client.get(f"/v2/reconstructions/{fh}").json()
    assert full["offset_into_first_range"] == 0 and sum(
        t["unpacked_length"] for t in full["terms"]
    ) == len(data)
    batch = client.get(
        "/v1/reconstructions", params=[("file_id", fh), ("file_id", "2" * 64)]
    ).json()
    assert list(batch["files"]) == [fh] and batch["files"][fh] == full["terms"]


def test_signed_urls(
    server: CasServer, client: httpx.Client, registered: tuple[Any, bytes]
) -> None:
    up, _ = registered
    x = up.xorbs[0]
    doc = client.get(
        f"/v2/reconstructions/{up.file_hashes[0]}", headers={"Range": "bytes=0-299999"}
    ).json()
    (entry,) = doc["xorbs"][x.hash.hex()]
    url = entry["url"]
    b0, b1 = entry["ranges"][0]["bytes"]["start"], entry["ranges"][0]["bytes"]["end"]
    ok = _fetch(url, [(b0, b1)])
    assert (
        ok.status_code == 206
        and ok.headers["content-range"] == f"bytes {b0}-{b1}/{len(x.stored())}"
    )
    assert ok.content == x.body[b0 : b1 + 1]
    assert ok.headers["cross-origin-resource-policy"] == "cross-origin"
    # sub-ranges and several ranges inside the signed set: multipart/byteranges, in request order
    mid = (b0 + b1) // 2
    multi = _fetch(url, [(mid + 1, b1), (b0, mid)])
    assert multi.status_code == 206
    boundary = multi.headers["content-type"].split("boundary=")[1]
    parts = multi.content.split(f"--{boundary}".encode())[1:-1]
    bodies = [p.split(b"\r\n\r\n", 1)[1][:-2] for p in parts]
    assert bodies == [x.body[mid + 1 : b1 + 1], x.body[b0 : mid + 1]]
    assert f"Content-Range: bytes {mid + 1}-{b1}/".encode() in parts[0]
    # outside the signed set, no Range, tampering, expiry
    assert _fetch(url, [(b0, b1 + 1)]).status_code == 403
    assert httpx.get(url).status_code == 400
    assert _fetch(url.replace("Signature=", "Signature=A"), [(b0, b1)]).status_code == 403
    widened = url.replace(f"-{b1}&", f"-{b1 + 1000}&")
    assert widened != url and _fetch(widened, [(b0, b1 + 1000)]).status_code == 403
    expired = re.sub(r"Expires=\d+", f"Expires={int(time.time()) - 1}", url)
    r = _fetch(expired, [(b0, b1)])
    assert r.status_code == 403
    server.set_faults(endpoints={"reconstruction_v2": {"expire_rate": 1.0}})
    doc = client.get(f"/v2/reconstructions/{up.file_hashes[0]}").json()
    r = _fetch(doc["xorbs"][x.hash.hex()][0]["url"], [(b0, b1)])
    assert r.status_code == 403 and "expired" in r.json()["message"]


def test_corrupt_fault_flips_one_byte(
    server: CasServer, client: httpx.Client, registered: tuple[Any, bytes]
) -> None:
    up, _ = registered
    x = up.xorbs[0]
    doc = client.get(f"/v2/reconstructions/{up.file_hashes[0]}").json()
    entry = doc["xorbs"][x.hash.hex()][0]
    b0, b1 = entry["ranges"][0]["bytes"]["start"], entry["ranges"][0]["bytes"]["end"]
    server.set_faults(endpoints={"xorb_fetch": {"corrupt_rate": 1.0, "max_faults": 1}})
    bad = _fetch(entry["url"], [(b0, b1)]).content
    good = _fetch(entry["url"], [(b0, b1)]).content
    assert good == x.body[b0 : b1 + 1]
    assert len(bad) == len(good) and sum(a != b for a, b in zip(bad, good, strict=True)) == 1
    diff = next(i for i, (a, b) in enumerate(zip(bad, good, strict=True)) if a != b)
    assert diff >= 8  # a payload byte, not a record header
    assert server.stats()["faults_injected"] == 1
