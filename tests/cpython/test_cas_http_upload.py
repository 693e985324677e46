"""The upload half of the CAS HTTP API, spoken directly: xorb and shard validation with nothing
stored on rejection, tokens and scopes, the grant flow's checks, body limits."""

from __future__ import annotations

import itertools
import re
import sqlite3
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.cpython._cas_helpers import (  # noqa: F401 (the fixtures)
    client_fixture,
    server_fixture,
    upload_xorbs,
)
from tests.plugins.cas_server import build_upload, cas_client
from tests.plugins.cas_server import rand_bytes as rand
from tests.plugins.cas_server import stored_state as stored

if TYPE_CHECKING:
    from tests.plugins.cas_server import CasServer


def assert_rejected(
    server: CasServer, response: httpx.Response, before: dict[str, Any], pattern: str
) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_object"
    assert re.search(pattern, body["message"]), body["message"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert stored(server) == before


# ---------------------------------------------------------------------------- xorbs
def test_xorb_upload_validates_and_is_idempotent(server: CasServer, client: httpx.Client) -> None:
    up = build_upload([rand(300_000, 1)])
    x = up.xorbs[0]
    before = stored(server)
    r = client.post(f"/v1/xorbs/default/{x.hash}", content=x.body)
    assert r.status_code == 200 and r.json() == {"was_inserted": True}
    r = client.post(f"/v1/xorbs/default/{x.hash}", content=x.body)
    assert r.json() == {"was_inserted": False}
    after = stored(server)
    assert after["rows"]["xorbs"] == before["rows"]["xorbs"] + 1
    assert after["files"] == [f"xorbs/{x.hash.hex()[:2]}/{x.hash}.xorb"]
    # stored form = body + rebuilt V1 footer
    from xet_pyodide.core.xorb_footer import parse_footer

    blob = (server.data_dir / after["files"][0]).read_bytes()
    assert blob[: len(x.body)] == x.body
    footer = parse_footer(blob)
    assert (
        footer.version == 1 and footer.xorb_hash == x.hash and footer.chunk_hashes == x.chunk_hashes
    )
    head = client.head(f"/v1/xorbs/default/{x.hash}")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(blob)
    assert client.head(f"/v1/xorbs/default/{'0' * 64}").status_code == 404


@pytest.mark.parametrize(
    ("case", "pattern"),
    [
        ("wrong_hash", "does not match its hash"),
        ("truncated", "truncated"),
        ("garbage", "malformed xorb"),
        ("with_footer", "footer"),
        ("bit_flip", "malformed|does not match"),
        ("empty", "at least one chunk"),
    ],
)
def test_invalid_xorbs_leave_no_trace(
    server: CasServer, client: httpx.Client, case: str, pattern: str
) -> None:
    up = build_upload([rand(200_000, 2), rand(70_000, 3)])
    x, other = up.xorbs
    path, body = f"/v1/xorbs/default/{x.hash}", x.body
    if case == "wrong_hash":
        path = f"/v1/xorbs/default/{other.hash}"
    elif case == "truncated":
        body = x.body[:-100]
    elif case == "garbage":
        body = rand(5000, 4)
    elif case == "with_footer":
        body = x.stored()
    elif case == "bit_flip":
        body = bytearray(x.body)
        body[len(body) // 2] ^= 0x01
        body = bytes(body)
    elif case == "empty":
        body = b""
    before = stored(server)
    assert_rejected(server, client.post(path, content=body), before, pattern)
    assert server.stats()["rejected_objects"] == 1


def test_xorb_path_and_size_checks(server: CasServer, cas_server_factory) -> None:
    token, _ = server.token("write")
    h = {"Authorization": f"Bearer {token}"}
    r = httpx.post(f"{server.url}/v1/xorbs/default/not-a-hash", content=b"x", headers=h)
    assert r.status_code == 400 and "hash" in r.json()["message"]
    r = httpx.post(f"{server.url}/v1/xorbs/other/{'0' * 64}", content=b"x", headers=h)
    assert r.status_code == 404
    small = cas_server_factory(max_xorb_bytes=100_000, max_shard_bytes=10_000)
    token, _ = small.token("write")
    h = {"Authorization": f"Bearer {token}"}
    x = build_upload([rand(150_000, 5)]).xorbs[0]
    before = stored(small)
    r = httpx.post(f"{small.url}/v1/xorbs/default/{x.hash}", content=x.body, headers=h)
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"

    def chunked():  # no Content-Length: the limit applies while streaming
        yield x.body[:60_000]
        yield x.body[60_000:]

    r = httpx.post(f"{small.url}/v1/xorbs/default/{x.hash}", content=chunked(), headers=h)
    assert r.status_code == 413
    r = httpx.post(f"{small.url}/v1/shards", content=bytes(20_000), headers=h)
    assert r.status_code == 413
    assert stored(small) == before


# ---------------------------------------------------------------------------- auth
def test_tokens_scopes_and_expiry(server: CasServer) -> None:
    x = build_upload([rand(10_000, 6)]).xorbs[0]
    url = f"{server.url}/v1/xorbs/default/{x.hash}"
    before = stored(server)

    def post(token: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(url, content=x.body, headers=headers)

    read, _ = server.token("read")
    write, _ = server.token("write", ttl=1)
    assert post(None).status_code == 401
    assert post("nonsense").status_code == 401
    assert post(server.dev_secret).status_code == 401  # the dev secret is not a CAS token
    forged = read.rsplit(".", 1)[0] + "." + write.rsplit(".", 1)[1]
    assert post(forged).status_code == 401
    r = post(read)
    assert r.status_code == 403 and "scope" in r.json()["message"]
    for path in ("/v1/shards", "/v2/shards", f"/v1/xorb-grants/default/{x.hash}"):
        assert (
            httpx.post(
                server.url + path, content=b"{}", headers={"Authorization": f"Bearer {read}"}
            ).status_code
            == 403
        )
    time.sleep(1.1)
    r = post(write)
    assert r.status_code == 401 and "expired" in r.json()["message"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert stored(server) == before
    # read tokens read
    assert (
        httpx.get(
            f"{server.url}/v1/reconstructions/{'0' * 64}",
            headers={"Authorization": f"Bearer {read}"},
        ).status_code
        == 404
    )
    assert httpx.get(f"{server.url}/v1/reconstructions/{'0' * 64}").status_code == 401


def test_token_endpoint_shape(server: CasServer) -> None:
    r = httpx.get(
        f"{server.url}/api/datasets/org/name/xet-write-token/refs%2Fpr%2F1",
        headers=server.token_headers,
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"accessToken", "exp", "casUrl"}
    assert body["casUrl"] == server.url
    assert r.headers["x-xet-access-token"] == body["accessToken"]
    assert int(r.headers["x-xet-token-expiration"]) == body["exp"]
    assert r.headers["x-xet-cas-url"] == server.url
    assert abs(body["exp"] - time.time() - 3600) < 5
    r = httpx.get(f"{server.url}/api/buckets/org/b/xet-read-token", headers=server.token_headers)
    assert r.status_code == 200
    assert httpx.get(server.token_url("write")).status_code == 401
    assert (
        httpx.get(server.token_url("write"), headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    assert (
        httpx.get(
            f"{server.url}/api/models/x/y/xet-admin-token/main", headers=server.token_headers
        ).status_code
        == 404
    )


# ---------------------------------------------------------------------------- shards
def test_shard_registers_files(server: CasServer, client: httpx.Client) -> None:
    datas = [rand(250_000, 7), b"", rand(65_536, 8)]
    up = build_upload(datas)
    upload_xorbs(client, up.xorbs)
    r = client.post("/v1/shards", content=up.shard)
    assert r.status_code == 200 and r.json() == {"result": 1}
    assert client.post("/v1/shards", content=up.shard).json() == {"result": 0}
    rows = stored(server)["rows"]
    assert rows["files"] == 3 and rows["shards"] == 1
    for fh, data in zip(up.file_hashes, datas, strict=True):
        r = client.head(f"/v1/files/{fh}")
        assert r.status_code == 200 and int(r.headers["content-length"]) == len(data)
    db = sqlite3.connect(server.data_dir / "index.sqlite3")
    import hashlib

    sha = db.execute("SELECT sha256 FROM files WHERE hash=?", (up.file_hashes[0],)).fetchone()[0]
    assert sha == hashlib.sha256(datas[0]).hexdigest()


def test_shard_v2_ndjson_frames(server: CasServer, client: httpx.Client) -> None:
    up = build_upload([rand(100_000, 9), rand(30_000, 10)])
    upload_xorbs(client, up.xorbs)
    r = client.post("/v2/shards", content=up.shard)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    import json

    frames = [json.loads(line) for line in r.text.splitlines()]
    types = [f["type"] for f in frames]
    assert types[0] == "validating" and types[-1] == "result"
    assert frames[-1]["result"] == 1
    assert {"type": "committing", "stage": "syncing"} in frames
    assert any(f["type"] == "validating" and f["verified"] == f["total"] == 2 for f in frames)
    again = [
        json.loads(line) for line in client.post("/v2/shards", content=up.shard).text.splitlines()
    ]
    assert again[-1] == {"type": "result", "result": 0}


def test_shard_v2_heartbeat(cas_server_factory) -> None:
    """While validation/commit runs, the last frame is repeated every heartbeat interval."""
    import json

    slow = {"endpoints": {"shard_v2": {"commit_delay_ms": 600}}}
    server = cas_server_factory(heartbeat=0.1, faults=slow)
    up = build_upload([rand(40_000, 30)])
    with cas_client(server) as client:
        upload_xorbs(client, up.xorbs)
        frames = [
            json.loads(ln) for ln in client.post("/v2/shards", content=up.shard).text.splitlines()
        ]
    syncing = [f for f in frames if f == {"type": "committing", "stage": "syncing"}]
    assert len(syncing) >= 3  # the frame itself plus heartbeats during the 600 ms pause
    assert frames[-1] == {"type": "result", "result": 1}


def _tamper(up: Any, case: str) -> bytes:
    from xet_pyodide.core.hashes import MerkleHash
    from xet_pyodide.core.shard import serialize_shard
    from xet_pyodide.core.shard_model import FileEntry, FileTerm, Shard, XorbChunk, XorbEntry

    files, xorbs = list(up.shard_model.files), list(up.shard_model.xorbs)
    f0 = files[0]
    bogus = MerkleHash(bytes(range(32)))
    if case == "verification":
        files[0] = FileEntry(f0.file_hash, f0.terms, [bogus], f0.sha256)
    elif case == "file_hash":
        files[0] = FileEntry(bogus, f0.terms, f0.verification, f0.sha256)
    elif case == "missing_xorb_term":
        t = f0.terms[0]
        files[0] = FileEntry(
            f0.file_hash,
            [FileTerm(bogus, t.chunk_start, t.chunk_end, t.unpacked_bytes)],
            f0.verification,
            f0.sha256,
        )
    elif case == "missing_xorb_cas":
        xorbs.append(XorbEntry(bogus, [XorbChunk(bogus, 0, 10)]))
    elif case == "cas_mismatch":
        x = xorbs[0]
        chunks = list(x.chunks)
        chunks[1] = XorbChunk(bogus, chunks[1].byte_start, chunks[1].size)
        xorbs[0] = XorbEntry(x.xorb_hash, chunks)
    elif case == "term_range":
        t = f0.terms[0]
        files[0] = FileEntry(
            f0.file_hash,
            [FileTerm(t.xorb_hash, 0, t.chunk_end + 1, t.unpacked_bytes)],
            f0.verification,
            f0.sha256,
        )
    elif case == "term_size":
        t = f0.terms[0]
        files[0] = FileEntry(
            f0.file_hash,
            [FileTerm(t.xorb_hash, 0, t.chunk_end, t.unpacked_bytes + 1)],
            f0.verification,
            f0.sha256,
        )
    elif case == "no_verification":
        files[0] = FileEntry(f0.file_hash, f0.terms, None, f0.sha256)
    elif case == "truncated":
        return up.shard[:-50]
    elif case == "garbage":
        return rand(4800, 11)
    elif case == "bad_tag":
        return b"X" + up.shard[1:]
    return serialize_shard(Shard(files, xorbs))


@pytest.mark.parametrize(
    ("case", "pattern"),
    [
        ("verification", "verification hash does not match"),
        ("file_hash", "chunks hash to"),
        ("missing_xorb_term", "not stored"),
        ("missing_xorb_cas", "not stored"),
        ("cas_mismatch", "hash differs from the stored xorb"),
        ("term_range", "outside the xorb"),
        ("term_size", "unpacked size"),
        ("no_verification", "no verification hash"),
        ("truncated", "malformed shard"),
        ("garbage", "malformed shard"),
        ("bad_tag", "malformed shard"),
    ],
)
@pytest.mark.parametrize("version", [1, 2])
def test_invalid_shards_leave_no_trace(
    server: CasServer, client: httpx.Client, case: str, pattern: str, version: int
) -> None:
    up = build_upload([rand(300_000, 12), rand(50_000, 13)])
    upload_xorbs(client, up.xorbs)
    body = _tamper(up, case)
    before = stored(server)
    r = client.post(f"/v{version}/shards", content=body)
    if version == 1 or pattern == "malformed shard":
        assert_rejected(server, r, before, pattern)
    else:  # v2: semantic failures end the NDJSON stream with an error frame
        import json

        assert r.status_code == 200
        last = json.loads(r.text.splitlines()[-1])
        assert last["type"] == "error" and last["retryable"] is False
        assert re.search(pattern, last["message"]), last["message"]
        assert stored(server) == before
    assert server.stats()["rejected_objects"] == 1


def test_shard_referencing_unuploaded_xorb(server: CasServer, client: httpx.Client) -> None:
    """The shard's own CAS section is not enough: the xorb bytes must have been uploaded."""
    up = build_upload([rand(100_000, 14)])
    before = stored(server)
    assert_rejected(server, client.post("/v1/shards", content=up.shard), before, "not stored")


# ---------------------------------------------------------------------------- grant flow
def test_grant_flow_checks(server: CasServer, client: httpx.Client) -> None:
    from xet_cas_server.checksum import crc64_nvme

    x = build_upload([rand(150_000, 17)]).xorbs[0]
    crc = crc64_nvme(x.body)
    grant_req = {"length": len(x.body), "checksum": {"algo": "crc64nvme", "value": str(crc)}}
    before = stored(server)
    g = client.post(f"/v1/xorb-grants/default/{x.hash}", json=grant_req)
    assert g.status_code == 201
    grant = g.json()
    assert set(grant) == {"id", "method", "url", "headers"} and grant["method"] == "PUT"
    commit = f"/v1/xorb-commits/default/{x.hash}/grant/{grant['id']}"
    assert client.post(commit).status_code == 404  # nothing uploaded yet

    def put(body: bytes) -> httpx.Response:
        return httpx.put(grant["url"], content=body, headers=grant["headers"])

    assert put(x.body[:-1]).status_code == 400  # wrong length
    flipped = bytearray(x.body)
    flipped[-1] ^= 1
    r = put(bytes(flipped))
    assert r.status_code == 400 and "CRC" in r.json()["message"]
    assert (
        httpx.put(
            grant["url"].replace("Signature=", "Signature=x"),
            content=x.body,
            headers=grant["headers"],
        ).status_code
        == 403
    )
    assert stored(server) == before
    assert put(x.body).status_code == 200
    r = client.post(commit)
    assert r.status_code == 200 and r.json() == {"was_inserted": True}
    assert put(x.body).status_code == 412  # already stored
    g2 = client.post(f"/v1/xorb-grants/default/{x.hash}", json=grant_req)
    assert g2.status_code == 200  # exists: nothing to upload
    assert stored(server)["rows"]["xorbs"] == before["rows"]["xorbs"] + 1
    assert not list((server.data_dir / "staging").iterdir())
    # a grant for content that does not hash to its name: PUT passes (CRC), commit rejects
    y = build_upload([rand(20_000, 18)]).xorbs[0]
    wrong = f"/v1/xorb-grants/default/{'ab' * 32}"
    req = {
        "length": len(y.body),
        "checksum": {"algo": "crc64nvme", "value": str(crc64_nvme(y.body))},
    }
    grant = client.post(wrong, json=req).json()
    assert httpx.put(grant["url"], content=y.body, headers=grant["headers"]).status_code == 200
    before = stored(server)
    r = client.post(f"/v1/xorb-commits/default/{'ab' * 32}/grant/{grant['id']}")
    assert r.status_code == 400 and "does not match its hash" in r.json()["message"]
    assert {k: v for k, v in stored(server).items()} == {
        **before,
        "files": [f for f in before["files"] if "staging" not in f],
    }
    for bad in ({"length": 5}, {"length": 5, "checksum": {"algo": "md5", "value": "1"}}, [1]):
        assert client.post(f"/v1/xorb-grants/default/{x.hash}", json=bad).status_code == 400


def test_grant_puts_racing_for_one_grant(server: CasServer, client: httpx.Client) -> None:
    """PUTs of one grant at the same time (a client retrying too early): each body is written
    and validated in a file of its own, mapped, then renamed to the grant's staged file: none
    truncates a file another is reading (that would kill the server with SIGBUS); the commit
    stores the xorb once, byte for byte, and leaves nothing staged."""
    from concurrent.futures import ThreadPoolExecutor

    from xet_cas_server.checksum import crc64_nvme

    x = build_upload([rand(3_000_000, 23)]).xorbs[0]
    req = {
        "length": len(x.body),
        "checksum": {"algo": "crc64nvme", "value": str(crc64_nvme(x.body))},
    }
    grant = client.post(f"/v1/xorb-grants/default/{x.hash}", json=req).json()
    with ThreadPoolExecutor(4) as pool:
        codes = list(
            pool.map(
                lambda _: httpx.put(grant["url"], content=x.body, headers=grant["headers"]),
                range(4),
            )
        )
    assert [r.status_code for r in codes] == [200] * 4
    r = client.post(f"/v1/xorb-commits/default/{x.hash}/grant/{grant['id']}")
    assert r.status_code == 200 and r.json() == {"was_inserted": True}
    stored_xorb = (server.data_dir / "xorbs" / str(x.hash)[:2] / f"{x.hash}.xorb").read_bytes()
    assert stored_xorb == x.stored()
    assert not list((server.data_dir / "staging").iterdir())
    assert client.get("/_admin/health").status_code == 200  # still serving


def test_grant_put_finishing_after_the_commit(server: CasServer, client: httpx.Client) -> None:
    """A second PUT of a grant still arriving when the commit runs: the commit stores the bytes
    of the PUT whose verdict it holds, and the late PUT, finding its grant gone, is refused and
    leaves nothing staged."""
    import socket
    import urllib.parse

    from xet_cas_server.checksum import crc64_nvme

    x = build_upload([rand(400_000, 31)]).xorbs[0]
    req = {
        "length": len(x.body),
        "checksum": {"algo": "crc64nvme", "value": str(crc64_nvme(x.body))},
    }
    grant = client.post(f"/v1/xorb-grants/default/{x.hash}", json=req).json()
    assert httpx.put(grant["url"], content=x.body, headers=grant["headers"]).status_code == 200
    url = urllib.parse.urlsplit(grant["url"])
    head = f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in grant["headers"].items())
    head += f"Content-Length: {len(x.body)}\r\nConnection: close\r\n\r\n"
    with socket.create_connection((url.hostname, url.port)) as late:
        late.sendall(head.encode() + x.body[:1000])  # ...and the rest after the commit
        time.sleep(0.3)
        r = client.post(f"/v1/xorb-commits/default/{x.hash}/grant/{grant['id']}")
        assert r.status_code == 200 and r.json() == {"was_inserted": True}
        late.sendall(x.body[1000:])
        answer = b""
        while chunk := late.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    stored_xorb = (server.data_dir / "xorbs" / str(x.hash)[:2] / f"{x.hash}.xorb").read_bytes()
    assert stored_xorb == x.stored()
    assert not list((server.data_dir / "staging").iterdir())


def test_grant_is_used_up_when_its_commit_starts(cas_server_factory) -> None:
    """While a commit of a grant runs (held between its object file and its index row), a
    second commit of the same grant and a PUT to it are refused (404, 403) instead of racing
    for the staged file; the first commit stores the xorb once, byte for byte."""
    from concurrent.futures import ThreadPoolExecutor

    from xet_cas_server.checksum import crc64_nvme

    # The pause must outlast the sleep, the second commit and the late PUT on a loaded machine:
    # with 800 ms the first commit once finished before the PUT arrived (412: already stored).
    slow = {"endpoints": {"xorb_commit": {"commit_delay_ms": 3000}}}
    server = cas_server_factory(faults=slow)
    x = build_upload([rand(400_000, 37)]).xorbs[0]
    req = {
        "length": len(x.body),
        "checksum": {"algo": "crc64nvme", "value": str(crc64_nvme(x.body))},
    }
    with cas_client(server) as client:
        grant = client.post(f"/v1/xorb-grants/default/{x.hash}", json=req).json()
        assert httpx.put(grant["url"], content=x.body, headers=grant["headers"]).status_code == 200
        commit = f"/v1/xorb-commits/default/{x.hash}/grant/{grant['id']}"
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(client.post, commit)
            time.sleep(0.3)  # the first commit is in its pause
            assert not first.done()
            assert client.post(commit).status_code == 404
            late = httpx.put(grant["url"], content=x.body, headers=grant["headers"])
            assert late.status_code == 403, late.text
            assert not first.done()  # the PUT was answered inside the first commit's pause
            r = first.result()
        assert r.status_code == 200 and r.json() == {"was_inserted": True}
    stored_xorb = (server.data_dir / "xorbs" / str(x.hash)[:2] / f"{x.hash}.xorb").read_bytes()
    assert stored_xorb == x.stored()
    assert not list((server.data_dir / "staging").iterdir())


def test_crc64_nvme_of_pieces() -> None:
    from xet_cas_server.checksum import crc64_nvme, crc64_nvme_of_pieces

    data = rand(300_000, 29)
    cuts = [0, 1, 65_536, 65_537, 200_000, 300_000]
    pieces = [data[a:b] for a, b in itertools.pairwise(cuts)]
    assert crc64_nvme_of_pieces(pieces) == crc64_nvme(data)
    assert crc64_nvme_of_pieces([]) == crc64_nvme(b"") == 0


def test_crc64_nvme_agrees_with_core() -> None:
    from xet_cas_server.checksum import crc64_nvme

    from xet_pyodide.core.crc import crc64_nvme as core_crc

    assert crc64_nvme(b"123456789") == 0xAE8B14860A799888
    data = rand(5000, 19)
    assert crc64_nvme(data) == core_crc(data)
